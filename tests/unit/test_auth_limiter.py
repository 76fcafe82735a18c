"""Failed-authentication rate limit: blocked after too many unknown tokens, for a window."""

from __future__ import annotations

from services.auth_limiter import FailedAuthLimiter


def test_a_client_is_blocked_after_too_many_failures_until_the_window_passes():
    now = [0.0]
    limiter = FailedAuthLimiter(max_failures=3, window_s=10, clock=lambda: now[0])
    for _ in range(2):
        limiter.failed("10.0.0.1")
    assert limiter.retry_after("10.0.0.1") is None
    now[0] = 4
    limiter.failed("10.0.0.1")
    assert limiter.retry_after("10.0.0.1") == 6  # the first failure leaves the window at 10
    assert limiter.retry_after("10.0.0.2") is None  # others are not affected
    now[0] = 10.5
    assert limiter.retry_after("10.0.0.1") is None
