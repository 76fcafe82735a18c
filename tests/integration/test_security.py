"""Security over real HTTP and real logs: failed-authentication rate limit, and no token in
any log line of a full run (control plane, inference server, CLI, a cycle)."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from tests.integration.learning_helpers import define_task, import_examples
from tests.processes import ControlPlaneProcess, InferenceServerProcess, create_token

pytestmark = pytest.mark.integration


@pytest.fixture
def plane(home, broker, tiny_model_dir):
    plane = ControlPlaneProcess(
        home,
        broker.bootstrap,
        extra_env={
            "FLYWHEEL_BASE_MODEL": str(tiny_model_dir),
            "FLYWHEEL_AUTH_MAX_FAILURES": "5",
            "FLYWHEEL_AUTH_FAILURE_WINDOW_S": "3",
            "FLYWHEEL_LOG_LEVEL": "DEBUG",
        },
    )
    plane.start()
    yield plane
    plane.stop()


def test_failed_authentication_is_rate_limited_and_no_token_reaches_a_log(plane, tmp_path):
    operator = create_token(plane, "operator", "olga")
    good = {"Authorization": f"Bearer {operator}"}
    url = f"{plane.url}/v1/status"
    guesses = [
        httpx.get(url, headers={"Authorization": f"Bearer fw_guess{i}"}).status_code
        for i in range(7)
    ]
    assert guesses == [401] * 5 + [429] * 2
    blocked = httpx.get(url, headers=good)
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) >= 1
    time.sleep(3.2)
    assert httpx.get(url, headers=good).status_code == 200

    server = InferenceServerProcess(plane, extra_env={"FLYWHEEL_LOG_LEVEL": "DEBUG"})
    server.start()
    try:
        app = create_token(plane, "app", "shop")
        define_task(plane, tmp_path, "money")
        import_examples(plane, tmp_path, "money")
        assert plane.cli("cycle", "run", "money", "--wait").returncode == 0
        for token in (app, "fw_wrong-token-value", operator):
            httpx.post(
                f"{server.url}/v1/generate",
                json={"task": "money", "input": "pay me"},
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
        assert plane.cli("status").returncode == 0
    finally:
        server.stop()
    secrets = [operator, app, plane.admin_token, "fw_wrong-token-value", "fw_guess"]
    plane.stop()
    logs = [p for p in plane.home.rglob("*") if p.is_file() and (p.suffix in (".log", ".out"))]
    assert len(logs) >= 3, logs  # control plane, inference server, broker
    for path in logs:
        text = path.read_text(errors="replace")
        for secret in secrets:
            assert secret not in text, f"a token is in {path}"
        assert not re.search(r"fw_[A-Za-z0-9_-]{20,}", text), f"a token-shaped string in {path}"
