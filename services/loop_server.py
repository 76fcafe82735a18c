"""What both long-running processes share: uvicorn on our own event loop, and a stop signal."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterable

import uvicorn
from fastapi import FastAPI


class LoopServer(uvicorn.Server):
    """uvicorn on the process's loop; signals are handled by the process, not by uvicorn."""

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


def loop_server(app: FastAPI, host: str, port: int) -> LoopServer:
    return LoopServer(
        uvicorn.Config(
            app, host=host, port=port, log_level="warning", access_log=False, lifespan="off"
        )
    )


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
