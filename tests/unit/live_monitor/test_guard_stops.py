"""The live guard's loop ends when the control plane asks it to: shutdown once waited the
whole 15-second grace period for it, so every `flywheel down` took 17 s."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from services.control_plane.live_guard import LiveGuard
from services.control_plane.store_worker import StoreWorker


class EmptyTopic:
    """Stands in for the Kafka consumer: no records, as on a quiet service."""

    def __init__(self) -> None:
        self.reads = 0

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[Any, list[Any]]:
        self.reads += 1
        await asyncio.sleep(timeout_ms / 1000)
        return {}

    async def stop(self) -> None:
        pass


def test_run_returns_soon_after_a_stop_is_requested(tmp_path: Path) -> None:
    store = StoreWorker(tmp_path / "store.duckdb")
    store.open()
    guard = LiveGuard(
        bootstrap="unused:9092", store=store, runner=None, check_interval_s=60, monitor=None
    )
    topic = EmptyTopic()
    guard._consumer = topic  # type: ignore[assignment]

    async def scenario() -> None:
        running = asyncio.create_task(guard.run())
        await asyncio.sleep(0.5)
        assert not running.done()  # it keeps reading until asked
        guard.request_stop()
        await asyncio.wait_for(running, timeout=5)  # one read of at most 200 ms, not 15 s

    try:
        asyncio.run(scenario())
    finally:
        store.close()
    assert topic.reads >= 2
