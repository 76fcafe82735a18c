"""Rate limit on failed authentication: a client that sent too many unknown tokens within a
window is refused (429) for the rest of it, valid token or not, so guessing tokens is slow
and a right guess is not revealed by a different answer."""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable


class FailedAuthLimiter:
    def __init__(
        self, max_failures: int, window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._clock = clock
        self._failures: defaultdict[str, deque[float]] = defaultdict(deque)

    def retry_after(self, client: str) -> float | None:
        """Seconds until ``client`` may try again, or None when it is not blocked."""
        failures = self._failures.get(client)
        if not failures:
            return None
        now = self._clock()
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        if not failures:
            del self._failures[client]
            return None
        if len(failures) < self.max_failures:
            return None
        return failures[0] + self.window_s - now

    def failed(self, client: str) -> None:
        self._failures[client].append(self._clock())
