"""What both servers share: uvicorn believes X-Forwarded-For only from configured proxies,
and an address that cannot be bound is reported by the variable to change."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import httpx
import pytest
from fastapi import FastAPI, Request

from services.errors import PortInUseError, ServiceError
from services.loop_server import ensure_bindable, loop_server
from tests.processes import free_port


def whoami_app() -> FastAPI:
    app = FastAPI()

    @app.get("/healthz")
    async def client_address(request: Request) -> dict[str, str | None]:
        return {"client": request.client.host if request.client else None}

    return app


@contextmanager
def serving(trusted_proxies: Sequence[str]) -> Iterator[str]:
    port = free_port()
    server = loop_server(
        whoami_app(), "127.0.0.1", port, max_body_bytes=1024, trusted_proxies=trusted_proxies
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def seen_as(url: str, forwarded_for: str) -> str:
    answer = httpx.get(f"{url}/healthz", headers={"X-Forwarded-For": forwarded_for})
    return answer.json()["client"]


def test_a_local_client_cannot_name_another_address_by_default():
    with serving(trusted_proxies=()) as url:
        assert seen_as(url, "203.0.113.7") == "127.0.0.1"


def test_a_configured_proxy_names_the_client():
    with serving(trusted_proxies=("127.0.0.1",)) as url:
        assert seen_as(url, "203.0.113.7") == "203.0.113.7"
    with serving(trusted_proxies=("10.0.0.0/8",)) as url:  # loopback is not that proxy
        assert seen_as(url, "203.0.113.7") == "127.0.0.1"


@pytest.mark.parametrize("host", ["not..a.host", "no such host.invalid", "256.1.1.1"])
def test_a_host_that_is_no_address_is_named_by_its_variable(host):
    with pytest.raises(ServiceError, match=r"^FLYWHEEL_API_HOST=.* is not a host name"):
        ensure_bindable(host, 8000, host_variable="FLYWHEEL_API_HOST", port_variable="P")


def test_an_address_of_another_machine_is_named_by_its_variable():
    with pytest.raises(ServiceError, match="set FLYWHEEL_API_HOST to an address of this machine"):
        ensure_bindable("192.0.2.1", 8000, host_variable="FLYWHEEL_API_HOST", port_variable="P")


def test_a_taken_port_is_named_by_its_variable():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PortInUseError, match=f"port {port} .* set FLYWHEEL_API_PORT"):
            ensure_bindable(
                "127.0.0.1",
                port,
                host_variable="FLYWHEEL_API_HOST",
                port_variable="FLYWHEEL_API_PORT",
            )
