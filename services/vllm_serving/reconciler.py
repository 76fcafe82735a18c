"""Keep every vLLM replica serving every task's routed versions (champion and canary).

The reconciler runs in the control plane when ``FLYWHEEL_VLLM_URLS`` is set. It learns the
routes from the store at start, then follows flywheel.promotions. Every ``poll_s`` (and at
once after a promotion) it asks each replica what it serves (``GET /v1/models``) and plans
the difference (``adapter_plan.plan_replica``): it loads what is missing, checks the load
through ``/v1/models``, and unloads versions routed nowhere once their grace period is over.
Because it compares against what the replica says rather than what was sent, a replica that
restarted (vLLM forgets runtime loads) or came up late gets everything back on the next tick.

Adapters are read by the replicas from the shared adapter store (``FLYWHEEL_HOME/adapters``,
mounted on each replica, at ``FLYWHEEL_VLLM_ADAPTERS_DIR`` where its path differs): a path in
the load request names exactly the immutable, content-hashed directory the registry promoted,
which the hash check here has verified; vLLM's filesystem resolver would load whatever
directory matches a requested name, with no such check and no unloading.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from services.control_plane.store_worker import StoreWorker
from services.inference_server.champions import ChampionBook, parse_time
from services.inference_server.promotions import parse_promotion, promotions_consumer
from services.settings import Settings
from services.vllm_serving.adapter_plan import SEPARATOR, desired_names, plan_replica
from services.vllm_serving.replica import ReplicaRefused, ReplicaUnavailable, VllmReplica
from training.adapter_files import adapter_dir, verify_adapter
from training.canaries import active_canaries
from training.registry import audit, champions

log = logging.getLogger(__name__)
REFUSED_RETRY_S = 60.0  # a refused version is tried again after this long, not every tick


@dataclass
class ReplicaState:
    """What the reconciler knows of one replica, for logs and ``status()``."""

    up: bool = False
    serving: list[str] = field(default_factory=list)
    last_error: str | None = None
    unrouted_since: dict[str, float] = field(default_factory=dict)


class VllmReconciler:
    def __init__(
        self,
        *,
        replicas: list[VllmReplica],
        book: ChampionBook,
        adapters_dir: Path,
        replica_adapters_dir: str | None = None,
        bootstrap: str | None = None,
        grace_s: float = 60.0,
        poll_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        on_refused: Callable[[str, str], Awaitable[None]] | None = None,
    ) -> None:
        self.replicas = replicas
        self.book = book
        self.adapters_dir = adapters_dir
        self.replica_adapters_dir = replica_adapters_dir
        self.bootstrap = bootstrap
        self.grace_s = grace_s
        self.poll_s = poll_s
        self.clock = clock
        self.on_refused = on_refused
        self.states = {r.url: ReplicaState() for r in replicas}
        self.refused: dict[str, tuple[float, str]] = {}  # name → (when, why)
        self._verified: set[str] = set()
        self._wake = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None

    # -- the loop ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe to flywheel.promotions (from the beginning; stale messages are ignored
        by the book), before the first reconcile, so nothing published meanwhile is missed."""
        if self.bootstrap is not None:
            self._consumer = await promotions_consumer(self.bootstrap, "flywheel-vllm-reconciler")

    async def run(self) -> None:
        follow = asyncio.create_task(self._follow(), name="vllm-promotions")
        try:
            while True:
                try:
                    await self.reconcile_once()
                except Exception:  # a vLLM surprise must not stop the control plane
                    log.exception("vLLM reconcile pass failed; trying again in %.1f s", self.poll_s)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_s)
                self._wake.clear()
        finally:
            follow.cancel()

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        for replica in self.replicas:
            await replica.close()

    async def _follow(self) -> None:
        if self._consumer is None:
            return
        while True:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=100)
            for records in batches.values():
                for record in records:
                    self.apply_promotion(record.value)

    def apply_promotion(self, raw: bytes | None) -> bool:
        """Update the routes from one promotions message; wakes the loop when they changed."""
        message = parse_promotion(raw)
        if message is None:
            return False
        changed = self.book.apply(
            message.task, message.adapter_id, parse_time(message.at), message.canary
        )
        if changed:
            self._wake.set()
        return changed

    # -- one pass ---------------------------------------------------------------------------

    def desired(self) -> set[str]:
        """Served names of every routed version."""
        routes: dict[str, list[str | None]] = {}
        for task, champion in self.book.as_dict().items():
            routes[task] = [champion]
        for task, canary in self.book.canaries().items():
            routes.setdefault(task, []).append(canary["adapter_id"])
        return desired_names(routes)

    async def reconcile_once(self) -> None:
        """Bring every replica to the desired versions, replicas in parallel."""
        desired = self.desired()
        await asyncio.gather(*(self._reconcile(r, desired) for r in self.replicas))

    async def _reconcile(self, replica: VllmReplica, desired: set[str]) -> None:
        state = self.states[replica.url]
        try:
            served = await replica.served()
            plan = plan_replica(
                desired=desired,
                served=set(served.names),
                unrouted_since=state.unrouted_since,
                now=self.clock(),
                grace_s=self.grace_s,
            )
            for name in plan.loads:
                await self._load(replica, name)
            for name in plan.unloads:
                await self._unload(replica, name)
            served = await replica.served() if plan.loads or plan.unloads else served
        except (ReplicaUnavailable, ReplicaRefused) as error:
            if state.up:
                log.warning("vLLM replica %s is down: %s", replica.url, error)
            state.up, state.last_error = False, str(error)
            return
        state.unrouted_since = plan.unrouted_since
        if not state.up:
            log.info("vLLM replica %s is up, serving %s", replica.url, sorted(served.names))
        state.up, state.serving, state.last_error = True, sorted(served.names), None
        for name in plan.loads:
            if name not in served.names and name not in self.refused:
                log.error("%s: load of %s did not show in /v1/models", replica.url, name)

    async def _load(self, replica: VllmReplica, name: str) -> None:
        refused = self.refused.get(name)
        if refused is not None and self.clock() - refused[0] < REFUSED_RETRY_S:
            return
        adapter_id = name.rpartition(SEPARATOR)[2]
        try:
            local = adapter_dir(self.adapters_dir, adapter_id)
            if adapter_id not in self._verified:
                await asyncio.to_thread(verify_adapter, local)
                self._verified.add(adapter_id)
            started = time.perf_counter()
            await replica.load(name, self._replica_path(adapter_id, local))
        except (ValueError, OSError, ReplicaRefused) as error:
            await self._refuse(name, f"{error}")
            return
        self.refused.pop(name, None)
        log.info("loaded %s on %s in %.2f s", name, replica.url, time.perf_counter() - started)

    async def _unload(self, replica: VllmReplica, name: str) -> None:
        try:
            await replica.unload(name)
        except ReplicaRefused as error:  # gone already (a restart): nothing left to free
            log.warning("could not unload %s from %s: %s", name, replica.url, error)
            return
        log.info("unloaded %s from %s (routed nowhere for %.0f s)", name, replica.url, self.grace_s)

    async def _refuse(self, name: str, reason: str) -> None:
        first = name not in self.refused
        self.refused[name] = (self.clock(), reason)
        if first:
            log.error("vLLM: %s not loaded: %s; the task keeps its other versions", name, reason)
            if self.on_refused is not None:
                await self.on_refused(name, reason)

    def _replica_path(self, adapter_id: str, local: Path) -> str:
        if self.replica_adapters_dir is None:
            return str(local)
        return f"{self.replica_adapters_dir.rstrip('/')}/{adapter_id}"

    def status(self) -> dict[str, Any]:
        """Per replica: up, what it serves, the last error; and refused versions."""
        return {
            "desired": sorted(self.desired()),
            "replicas": {
                url: {"up": s.up, "serving": s.serving, "last_error": s.last_error}
                for url, s in self.states.items()
            },
            "refused": {name: why for name, (_, why) in self.refused.items()},
        }


def seed_routes(
    book: ChampionBook, champions: dict[str, dict[str, Any]], canaries: list[dict[str, Any]]
) -> None:
    """Start the book from the store: every champion (``registry.champions``) and running
    canary (``canaries.active_canaries``); the promotions topic then brings what is newer."""
    for task, live in champions.items():
        book.apply(task, live["adapter_id"], parse_time(live["since"]), None)
    for canary in canaries:
        task = canary["task"]
        book.apply(
            task,
            book.current(task),
            parse_time(canary["started_at"]),
            {"adapter_id": canary["adapter_id"], "fraction": float(canary["policy"]["fraction"])},
        )


async def start_reconciler(settings: Settings, store: StoreWorker) -> VllmReconciler:
    """The control plane's reconciler for FLYWHEEL_VLLM_URLS: seeded from the store,
    subscribed to flywheel.promotions, ready to ``run()``."""
    book = ChampionBook()
    seed_routes(book, await store.call(champions), await store.call(active_canaries))
    reconciler = reconciler_from_settings(settings, book, on_refused=audit_refusals(store))
    await reconciler.start()
    log.info("keeping vLLM replicas %s serving %s", list(settings.vllm_urls), book.as_dict())
    return reconciler


def audit_refusals(store: StoreWorker) -> Callable[[str, str], Awaitable[None]]:
    """``on_refused`` for the control plane: a version the replicas were not given is an
    alert in the audit log (action ``alert:adapter_refused``, as an inference server's own
    refusal), which the console's audit view shows."""

    async def refused(name: str, reason: str) -> None:
        task, _, adapter_id = name.rpartition(SEPARATOR)
        details = {"adapter_id": adapter_id, "reason": reason, "server": "vllm reconciler"}
        action = "alert:adapter_refused"
        await store.call(audit, actor="vllm-reconciler", action=action, task=task, details=details)

    return refused


def reconciler_from_settings(
    settings: Settings,
    book: ChampionBook,
    on_refused: Callable[[str, str], Awaitable[None]] | None = None,
) -> VllmReconciler:
    """A reconciler for FLYWHEEL_VLLM_URLS over ``book``'s routes."""
    key = settings.vllm_api_key.get_secret_value() if settings.vllm_api_key else None
    return VllmReconciler(
        replicas=[
            VllmReplica(url, api_key=key, timeout_s=settings.vllm_timeout_s)
            for url in settings.vllm_urls
        ],
        book=book,
        adapters_dir=settings.adapters_dir,
        replica_adapters_dir=settings.vllm_adapters_dir,
        bootstrap=settings.bootstrap,
        grace_s=settings.vllm_grace_s,
        poll_s=settings.vllm_poll_s,
        on_refused=on_refused,
    )
