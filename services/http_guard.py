"""What both HTTP servers do to every request before any route sees it, as pure ASGI (no
buffering of bodies, unlike ``BaseHTTPMiddleware``):

- a request to the token-protected API (``/v1/...``) without a well-formed
  ``Authorization: Bearer <token>`` header is refused with 401 before one byte of its body is
  read, so an anonymous client cannot make a server hold a large upload in memory;
- every body is capped: a declared ``Content-Length`` over the cap is refused with 413 at
  once, a chunked body is counted while it streams and cut at the cap with 413;
- every response carries the security headers (CSP, nosniff, no framing).

Health checks and the console's static pages (``/``, ``/ui/...``) stay public.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PROTECTED_PREFIX = "/v1/"
# RFC 6750's b64token: what a bearer token may look like at all.
_BEARER = re.compile(rb"^[Bb][Ee][Aa][Rr][Ee][Rr] +[A-Za-z0-9\-._~+/]+=*$")

# The console is one page with its own script and stylesheet: nothing inline, nothing from
# elsewhere. Its charts colour a legend with style attributes, hence style-src-attr.
CONSOLE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; "
    "style-src-attr 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# FastAPI's /docs and /redoc pages load Swagger UI / ReDoc from jsDelivr with an inline
# bootstrap script; they hold no data, so they get a policy that lets them work.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src 'self' https://fonts.gstatic.com; "
    "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    "worker-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
DOCS_PATHS = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)


class BodyTooLarge(Exception):
    """Raised into the app when a streamed body passes the cap; the guard answers 413."""


class HttpGuard:
    """Wraps an ASGI app; see the module docstring for what it refuses and adds."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_security_headers(send, scope["path"])
        headers = dict(scope["headers"])  # ASGI header names are lower-case bytes
        path: str = scope["path"]
        if path.startswith(PROTECTED_PREFIX) and not _BEARER.match(
            headers.get(b"authorization", b"")
        ):
            await _refuse(
                send,
                401,
                "send a token as 'Authorization: Bearer <token>' (flywheel token create)",
                extra=((b"www-authenticate", b"Bearer"),),
            )
            return
        declared = _content_length(headers)
        if declared is not None and declared > self.max_body_bytes:
            await _refuse(send, 413, self._too_large(f"is {declared} bytes"))
            return
        await self._capped(scope, receive, send)

    async def _capped(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app with a receive that counts the body and a send that is cut off once
        the count passes the cap (whatever the app makes of the error, the client gets 413)."""
        received = 0
        over = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    over = True
                    raise BodyTooLarge
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if over:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        with contextlib.suppress(BodyTooLarge):  # whether the app lets it out or not
            await self.app(scope, counting_receive, watched_send)
        if over and not started:  # once an answer is on its way, nothing sound can be added
            await _refuse(send, 413, self._too_large("streamed is longer"))

    def _too_large(self, size: str) -> str:
        return (
            f"the request body {size}; the limit is {self.max_body_bytes} bytes "
            "(FLYWHEEL_MAX_BODY_BYTES): send less per request"
        )


def _content_length(headers: dict[bytes, bytes]) -> int | None:
    value = headers.get(b"content-length")
    return int(value) if value is not None and value.isdigit() else None


def _with_security_headers(send: Send, path: str) -> Send:
    csp = (DOCS_CSP if path in DOCS_PATHS else CONSOLE_CSP).encode()

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            present = {name.lower() for name, _ in message.get("headers", [])}
            extra = [
                (name, value)
                for name, value in (*SECURITY_HEADERS, (b"content-security-policy", csp))
                if name not in present
            ]
            message["headers"] = [*message.get("headers", []), *extra]
        await send(message)

    return send_with_headers


async def _refuse(
    send: Send, code: int, detail: str, extra: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    """A JSON error both servers' clients read: FastAPI's ``detail`` and OpenAI's ``error``."""
    kind = {401: "authentication_error", 413: "invalid_request_error"}.get(code, "api_error")
    body = json.dumps(
        {"detail": detail, "error": {"message": detail, "type": kind, "code": code}}
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),  # the unread body must not be taken for the next request
        *extra,
    ]
    await send({"type": "http.response.start", "status": code, "headers": headers})
    await send({"type": "http.response.body", "body": body})
