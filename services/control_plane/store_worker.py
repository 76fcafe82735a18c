"""The control plane's single DuckDB connection, used from one dedicated thread.

DuckDB calls block, so they never run on the event loop; one thread keeps every write in
order and the connection's transaction state simple.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from feedback.store import connect

T = TypeVar("T")


class StoreWorker:
    """Runs ``fn(connection, ...)`` on the store thread and awaits the answer."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="duckdb")
        self._connection: duckdb.DuckDBPyConnection | None = None

    def open(self) -> None:
        """Open (and migrate) the store; raises StoreLockedError when another process has it."""
        self._connection = self._executor.submit(connect, self.path).result()

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self._connection is None:
            raise RuntimeError("store is not open")
        loop = asyncio.get_running_loop()
        # The connection is read on the store thread, not here: a call queued behind
        # ``reopen_after`` gets the reopened connection.
        return await loop.run_in_executor(
            self._executor, lambda: fn(self._connection, *args, **kwargs)
        )

    async def reopen_after(self, fn: Callable[[duckdb.DuckDBPyConnection, Path], None]) -> None:
        """Run ``fn(connection, path)`` on the store thread, then open the file again: ``fn``
        closes the connection and may put a new file in its place (``feedback.compaction``)."""
        if self._connection is None:
            raise RuntimeError("store is not open")
        await asyncio.get_running_loop().run_in_executor(self._executor, self._reopen_after, fn)

    def _reopen_after(self, fn: Callable[[duckdb.DuckDBPyConnection, Path], None]) -> None:
        assert self._connection is not None
        try:
            fn(self._connection, self.path)
        finally:
            self._connection.close()
            self._connection = connect(self.path)

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            self._executor.submit(connection.close).result()
        self._executor.shutdown(wait=True)
