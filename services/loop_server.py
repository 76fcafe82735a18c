"""What both long-running processes share: uvicorn on our own event loop, and a stop signal."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import signal
import socket
from collections.abc import Iterable, Sequence

import uvicorn
from fastapi import FastAPI

from services.errors import PortInUseError, ServiceError
from services.http_guard import HttpGuard


class LoopServer(uvicorn.Server):
    """uvicorn on the process's loop; signals are handled by the process, not by uvicorn."""

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


def loop_server(
    app: FastAPI,
    host: str,
    port: int,
    *,
    max_body_bytes: int,
    trusted_proxies: Sequence[str] = (),
) -> LoopServer:
    """uvicorn serving ``app`` behind the HTTP guard (auth before body, body cap, security
    headers). X-Forwarded-For is believed only from ``trusted_proxies``: uvicorn would
    otherwise believe any local process, and the failed-authentication limit counts clients
    by address."""
    return LoopServer(
        uvicorn.Config(
            HttpGuard(app, max_body_bytes=max_body_bytes),
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            proxy_headers=bool(trusted_proxies),
            forwarded_allow_ips=list(trusted_proxies),
        )
    )


def ensure_bindable(host: str, port: int, *, host_variable: str, port_variable: str) -> None:
    """Raise a ServiceError naming the variable to change when ``host:port`` cannot be bound:
    the port taken, or a host that is no address of this machine."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as error:
        raise ServiceError(
            f"{host_variable}={host!r} is not a host name or address ({error}): set it to an "
            "address of this machine, such as 127.0.0.1"
        ) from error
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise PortInUseError(
                    f"port {port} on {host} is taken: stop what uses it or set {port_variable}"
                ) from error
            raise ServiceError(
                f"cannot listen on {host}:{port} ({error.strerror}): set {host_variable} to an "
                f"address of this machine, or {port_variable} to a port you may use"
            ) from error


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def raise_first_failure(done: Iterable[asyncio.Task]) -> None:
    """Re-raise what a finished task (other than the signal wait) died of."""
    for task in done:
        if task.get_name() != "signal" and not task.cancelled() and task.exception():
            raise task.exception()  # type: ignore[misc]
