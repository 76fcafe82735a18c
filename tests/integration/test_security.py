"""Security over real HTTP and real logs: failed-authentication rate limit, and no token in
any log line of a full run (control plane, inference server, CLI, a cycle)."""

from __future__ import annotations

import re
import socket
import time

import httpx
import pytest

from services.control_plane.api.deps import RELAY_HEADER
from tests.integration.learning_helpers import define_task, import_examples
from tests.processes import ControlPlaneProcess, InferenceServerProcess, create_token, running

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
    with running(plane, graceful=True):
        yield plane


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


# --- who the limit counts, what reaches a route, what every answer carries ---------------

CAP = 65_536


def status_line(port: int, request: bytes, timeout_s: float = 5.0) -> str:
    """Send ``request`` (a head and maybe part of a body, never the rest) and read the status
    line of the answer; a server that waits for the rest of the body gives no answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as connection:
        connection.sendall(request)
        received = b""
        try:
            while b"\r\n" not in received:
                chunk = connection.recv(4096)
                if not chunk:
                    break
                received += chunk
        except TimeoutError:
            return f"no answer within {timeout_s} s"
    return received.split(b"\r\n")[0].decode()


def head(path: str, *lines: str) -> bytes:
    return "\r\n".join([f"POST {path} HTTP/1.1", "Host: localhost", *lines, "", ""]).encode()


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


@pytest.fixture
def guarded_plane(home, broker, tiny_model_dir):
    plane = ControlPlaneProcess(
        home,
        broker.bootstrap,
        extra_env={
            "FLYWHEEL_BASE_MODEL": str(tiny_model_dir),
            "FLYWHEEL_AUTH_MAX_FAILURES": "5",
            "FLYWHEEL_AUTH_FAILURE_WINDOW_S": "60",
            "FLYWHEEL_MAX_BODY_BYTES": str(CAP),
        },
    )
    with running(plane, graceful=True):
        yield plane


def test_forwarded_for_headers_from_an_untrusted_peer_do_not_reset_the_limit(guarded_plane):
    answers = [
        httpx.get(
            f"{guarded_plane.url}/v1/status",
            headers={"Authorization": f"Bearer fw_guess{i}", "X-Forwarded-For": f"198.51.100.{i}"},
        )
        for i in range(7)
    ]
    assert [a.status_code for a in answers] == [401] * 5 + [429] * 2
    assert "too many unknown tokens from 127.0.0.1" in answers[-1].json()["detail"]


def test_a_relay_header_without_a_valid_server_token_proves_nothing(guarded_plane):
    answers = [
        httpx.get(
            f"{guarded_plane.url}/v1/whoami",
            headers={"Authorization": f"Bearer fw_guess{i}", RELAY_HEADER: f"fw_made-up{i}"},
        )
        for i in range(6)
    ]
    assert [a.status_code for a in answers] == [401] * 5 + [429]
    assert "FLYWHEEL_SERVER_TOKEN" in answers[0].json()["detail"]


def bodies_are_refused_before_they_are_read(port: int, path: str, token: str) -> None:
    anonymous = head(path, "Transfer-Encoding: chunked") + chunk(b"x" * 4096)
    assert status_line(port, anonymous).startswith("HTTP/1.1 401")
    declared = head(path, f"Authorization: Bearer {token}", "Content-Length: 200000000")
    assert status_line(port, declared).startswith("HTTP/1.1 413")
    streamed = head(path, f"Authorization: Bearer {token}", "Transfer-Encoding: chunked")
    assert status_line(port, streamed + chunk(b"x" * (CAP + 1))).startswith("HTTP/1.1 413")


def test_control_plane_refuses_anonymous_and_oversized_bodies_without_reading_them(
    guarded_plane,
):
    reviewer = create_token(guarded_plane, "reviewer", "rita")
    bodies_are_refused_before_they_are_read(guarded_plane.port, "/v1/review/lease", reviewer)
    small = httpx.post(
        f"{guarded_plane.url}/v1/review/lease",
        json={},
        headers={"Authorization": f"Bearer {reviewer}"},
    )
    assert small.status_code == 200, small.text  # a body under the cap still gets through


def assert_security_headers(response: httpx.Response) -> None:
    assert response.headers["X-Content-Type-Options"] == "nosniff", response.url
    assert response.headers["X-Frame-Options"] == "DENY", response.url
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "frame-ancestors 'none'" in policy, response.url


def test_every_answer_of_the_control_plane_carries_the_security_headers(guarded_plane):
    url, admin = guarded_plane.url, guarded_plane.headers()
    for response in (
        httpx.get(f"{url}/"),
        httpx.get(f"{url}/ui/app.js"),
        httpx.get(f"{url}/healthz"),
        httpx.get(f"{url}/no-such-page"),
        httpx.get(f"{url}/v1/status"),
        httpx.get(f"{url}/v1/status", headers=admin),
        httpx.post(f"{url}/v1/tasks", json={"name": 3}, headers=admin),
    ):
        assert_security_headers(response)


def from_address(address: str) -> httpx.Client:
    """A client whose connections come from another loopback address: another client."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=30)


def generate(client: httpx.Client, server: InferenceServerProcess, token: str) -> httpx.Response:
    return client.post(
        f"{server.url}/v1/generate",
        json={"task": "money", "input": "pay me"},
        headers={"Authorization": f"Bearer {token}"},
    )


def test_one_clients_bad_tokens_lock_out_no_one_else_and_a_relayed_429_stays_a_429(
    guarded_plane, tmp_path
):
    plane = guarded_plane
    app, later_app = create_token(plane, "app", "shop"), create_token(plane, "app", "later")
    operator = create_token(plane, "operator", "olga")
    define_task(plane, tmp_path, "money")
    server = InferenceServerProcess(plane)
    server.start()
    try:
        # One client guesses at the server: the server refuses it, and only it.
        with from_address("127.0.0.2") as guesser:
            guesses = [generate(guesser, server, f"fw_guess{i}") for i in range(6)]
        assert [g.status_code for g in guesses] == [401] * 5 + [429]
        assert int(guesses[-1].headers["Retry-After"]) >= 1
        with httpx.Client(timeout=30) as honest:
            assert generate(honest, server, app).status_code == 200
        status = httpx.get(
            f"{plane.url}/v1/status", headers={"Authorization": f"Bearer {operator}"}
        )
        assert status.status_code == 200, status.text
        assert plane.cli("status").returncode == 0

        # Someone on the server's own host guesses at the control plane: the control plane
        # blocks that address, and the server passes the 429 on instead of failing with 500.
        for i in range(6):
            httpx.get(f"{plane.url}/v1/status", headers={"Authorization": f"Bearer fw_x{i}"})
        with from_address("127.0.0.3") as newcomer:
            refused = generate(newcomer, server, later_app)
        assert refused.status_code == 429, refused.text
        assert int(refused.headers["Retry-After"]) >= 1
        assert "too many unknown tokens" in refused.json()["error"]["message"]
        cli = plane.cli("status")
        assert cli.returncode == 1 and "Traceback" not in cli.stderr + cli.stdout
        assert "429" in cli.stderr and "too many unknown tokens" in cli.stderr

        # The inference server guards its own bodies and answers the same way.
        bodies_are_refused_before_they_are_read(server.port, "/v1/generate", app)
        for response in (
            httpx.get(f"{server.url}/healthz"),
            httpx.post(f"{server.url}/v1/generate", json={}),
            guesses[0],
        ):
            assert_security_headers(response)
    finally:
        server.stop()
