"""The gateway's replicas: what each serves, which are up, and the order to try them in.

Each replica's served names are refreshed every ``refresh_s`` from ``/v1/models``; a
replica that fails a request is marked down at once and skipped until a refresh finds it
up again. Requests go round-robin over the replicas that are up.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging

from services.vllm_serving.replica import ReplicaRefused, ReplicaUnavailable, Served, VllmReplica

log = logging.getLogger(__name__)


class ReplicaPool:
    def __init__(self, replicas: list[VllmReplica], *, refresh_s: float = 1.0) -> None:
        if not replicas:
            raise ValueError("no vLLM replica: set FLYWHEEL_VLLM_URLS")
        self.replicas = replicas
        self.refresh_s = refresh_s
        self.served: dict[str, Served | None] = {r.url: None for r in replicas}
        self._turn = itertools.count()

    def up(self) -> list[VllmReplica]:
        return [r for r in self.replicas if self.served[r.url] is not None]

    def in_order(self) -> list[VllmReplica]:
        """The replicas that are up, starting from the next one's turn."""
        live = self.up()
        if not live:
            return []
        start = next(self._turn) % len(live)
        return live[start:] + live[:start]

    def mark_down(self, replica: VllmReplica, reason: str) -> None:
        if self.served[replica.url] is not None:
            log.warning("skipping vLLM replica %s: %s", replica.url, reason)
        self.served[replica.url] = None

    async def refresh(self, replica: VllmReplica) -> None:
        try:
            self.served[replica.url] = await replica.served()
        except (ReplicaUnavailable, ReplicaRefused) as error:
            self.mark_down(replica, str(error))

    async def refresh_all(self) -> None:
        await asyncio.gather(*(self.refresh(r) for r in self.replicas))

    async def run(self) -> None:
        while True:
            await self.refresh_all()
            await asyncio.sleep(self.refresh_s)

    async def close(self) -> None:
        for replica in self.replicas:
            with contextlib.suppress(Exception):
                await replica.close()
