"""Follow flywheel.promotions and swap champions in place.

The follower reads the topic from the beginning with no consumer group (every server sees
every promotion; the topic is tiny), and applies a message only when it is newer than the
book's entry. The new adapter is verified and loaded before the book points at it, so the
swap itself is a dictionary update: no request waits for a load and none fails.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas.topics import PROMOTIONS
from services.inference_server.champions import ChampionBook, parse_time
from training.adapter_files import AdapterLoadError, adapter_dir

if TYPE_CHECKING:  # the host loads torch; the control plane's reconciler needs none of it
    from services.inference_server.model_host import ModelHost

log = logging.getLogger(__name__)


class PromotionFollower:
    def __init__(
        self,
        *,
        bootstrap: str,
        book: ChampionBook,
        host: ModelHost,
        adapters_dir: Path,
        on_refused: Callable[[str, str | None, str], Awaitable[None]],
    ) -> None:
        self.bootstrap = bootstrap
        self.book = book
        self.host = host
        self.adapters_dir = adapters_dir
        self.on_refused = on_refused
        self.last_swap_s: float | None = None
        self.swaps = 0
        self._consumer: AIOKafkaConsumer | None = None

    async def apply(
        self,
        task: str,
        adapter_id: str | None,
        at: str | None,
        canary: dict[str, Any] | bool | None = False,
    ) -> bool:
        """Load (verified) and switch to a task's new champion and canary; False when
        refused or stale. ``canary`` as ``ChampionBook.apply`` takes it."""
        since = parse_time(at)
        if not self.book.is_newer(task, since):
            return False
        started = time.perf_counter()
        wanted = [adapter_id] + ([canary["adapter_id"]] if isinstance(canary, dict) else [])
        for needed in wanted:
            if needed is not None and not await self._load(task, needed):
                return False
        previous = self.book.current(task)
        self.book.apply(task, adapter_id, since, canary)
        self.last_swap_s = time.perf_counter() - started
        self.swaps += 1
        await self.host.pin(self.book.adapters())
        log.info(
            "task %s now served by %s (was %s), swapped in %.3f s",
            task,
            adapter_id or "the base model",
            previous or "the base model",
            self.last_swap_s,
        )
        return True

    async def _load(self, task: str, adapter_id: str) -> bool:
        try:
            await self.host.ensure_loaded(adapter_id, adapter_dir(self.adapters_dir, adapter_id))
        except (AdapterLoadError, ValueError) as error:
            log.error(
                "refused adapter %s of task %s: %s; still serving %s",
                adapter_id,
                task,
                error,
                self.book.current(task) or "the base model",
            )
            await self.on_refused(task, adapter_id, str(error))
            return False
        return True

    async def start(self) -> None:
        self._consumer = await promotions_consumer(self.bootstrap, "flywheel-inference-server")

    async def run(self) -> None:
        assert self._consumer is not None, "start() first"
        while True:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=100)
            for records in batches.values():
                for record in records:
                    await self._handle(record.value)

    async def _handle(self, raw: bytes | None) -> None:
        message = parse_promotion(raw)
        if message is not None:
            await self.apply(message.task, message.adapter_id, message.at, message.canary)

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None


@dataclass(frozen=True)
class PromotionMessage:
    task: str
    adapter_id: str | None
    at: str | None
    canary: dict[str, Any] | bool | None
    """As ``ChampionBook.apply`` takes it: a dict, None (no canary) or False (not said)."""


def parse_promotion(raw: bytes | None) -> PromotionMessage | None:
    """A flywheel.promotions message, or None (logged) when it is malformed."""
    try:
        message: dict[str, Any] = json.loads(raw or b"")
        canary = message.get("canary", False)
        if isinstance(canary, dict):
            canary = {
                "adapter_id": str(canary["adapter_id"]),
                "fraction": float(canary["fraction"]),
            }
        return PromotionMessage(
            message["task"], message.get("adapter_id"), message.get("at"), canary
        )
    except (ValueError, KeyError, TypeError):
        log.warning("ignored a malformed promotion message: %r", (raw or b"")[:200])
        return None


async def promotions_consumer(bootstrap: str, client_id: str) -> AIOKafkaConsumer:
    """A started consumer of every partition of flywheel.promotions, from the beginning, with
    no consumer group: every follower sees every promotion (the topic is tiny)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        fetch_max_wait_ms=100,
        client_id=client_id,
    )
    await consumer.start()
    partitions = consumer.partitions_for_topic(PROMOTIONS) or set()
    if not partitions:
        await consumer.stop()
        raise RuntimeError(f"topic {PROMOTIONS} does not exist; start the control plane first")
    assigned = [TopicPartition(PROMOTIONS, p) for p in sorted(partitions)]
    consumer.assign(assigned)
    await consumer.seek_to_beginning(*assigned)
    return consumer
