"""The HTTP guard in front of both servers, driven as an ASGI server drives it: anonymous
requests to the API are refused before their body is read, every body is capped, and every
response carries the security headers."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from services.http_guard import HttpGuard

CAP = 1024


class EchoApp:
    """Reads the whole body, then answers with its length (what a route does)."""

    def __init__(self) -> None:
        self.called = False

    async def __call__(self, scope, receive, send) -> None:
        self.called = True
        size = 0
        while True:
            message = await receive()
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": json.dumps({"size": size}).encode()})


class SwallowingApp(EchoApp):
    """Turns any error while reading the body into its own 400, as FastAPI does."""

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except Exception:
            await send({"type": "http.response.start", "status": 400, "headers": []})
            await send({"type": "http.response.body", "body": b'{"detail": "bad body"}'})


def call(
    app: Any, path: str, chunks: list[bytes], headers: dict[str, str]
) -> tuple[int, dict[bytes, bytes], dict[str, Any], int]:
    """Status, headers, JSON body, and how many body chunks the app asked for."""
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    pending = list(chunks)
    reads = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        body = pending.pop(0) if pending else b""
        return {"type": "http.request", "body": body, "more_body": bool(pending)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(HttpGuard(app, max_body_bytes=CAP)(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert [m["type"] for m in sent].count("http.response.start") == 1
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), json.loads(body), reads


TOKEN = {"Authorization": "Bearer fw_abc-DEF_123"}


@pytest.mark.parametrize(
    "authorization", [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer a b", "fw_x"]
)
def test_an_api_request_without_a_bearer_token_is_refused_before_its_body_is_read(
    authorization,
):
    app = EchoApp()
    headers = {} if authorization is None else {"Authorization": authorization}
    code, response_headers, body, reads = call(app, "/v1/review/lease", [b"x" * 100], headers)
    assert (code, reads, app.called) == (401, 0, False)
    assert "Authorization: Bearer <token>" in body["detail"]
    assert response_headers[b"www-authenticate"] == b"Bearer"


def test_public_pages_and_health_need_no_token():
    for path in ("/healthz", "/", "/ui/app.js"):
        code, _, body, _ = call(EchoApp(), path, [b"hello"], {})
        assert (code, body) == (200, {"size": 5})


def test_a_declared_length_over_the_cap_is_refused_without_reading():
    app = EchoApp()
    headers = {**TOKEN, "Content-Length": str(200 * 1024 * 1024)}
    code, _, body, reads = call(app, "/v1/events", [b"x" * 10], headers)
    assert (code, reads, app.called) == (413, 0, False)
    assert f"the limit is {CAP} bytes (FLYWHEEL_MAX_BODY_BYTES)" in body["detail"]


@pytest.mark.parametrize("app_kind", [EchoApp, SwallowingApp])
def test_a_streamed_body_is_cut_at_the_cap_whatever_the_app_makes_of_it(app_kind):
    chunks = [b"x" * 400] * 10  # 4,000 bytes, no declared length (chunked)
    code, _, body, reads = call(app_kind(), "/v1/events", chunks, TOKEN)
    assert code == 413 and "FLYWHEEL_MAX_BODY_BYTES" in body["detail"]
    assert reads == 3  # the third chunk passed 1,024 bytes: nothing after it was read


def test_a_body_up_to_the_cap_reaches_the_app():
    code, _, body, _ = call(EchoApp(), "/v1/events", [b"x" * 600, b"y" * 424], TOKEN)
    assert (code, body) == (200, {"size": CAP})


def test_every_response_carries_the_security_headers():
    answers = [
        call(EchoApp(), "/", [], {}),
        call(EchoApp(), "/v1/status", [], {}),  # the guard's own 401
        call(EchoApp(), "/v1/events", [b"x" * 2000], TOKEN),  # the guard's own 413
        call(EchoApp(), "/v1/status", [], TOKEN),
    ]
    for _, headers, _, _ in answers:
        assert headers[b"x-content-type-options"] == b"nosniff"
        assert headers[b"x-frame-options"] == b"DENY"
        policy = headers[b"content-security-policy"].decode()
        assert "script-src 'self';" in policy and "frame-ancestors 'none'" in policy
