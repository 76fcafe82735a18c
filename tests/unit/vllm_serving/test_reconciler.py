"""The reconciler against replicas that behave as vLLM's runtime LoRA API does (in memory):
loads on promotion, reloads after a restart, unloads after the grace period, refuses a
corrupted adapter without touching the replica. The real vLLM path is in
tests/integration/test_vllm_serving.py."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from feedback.console import audit_entries
from services.control_plane.store_worker import StoreWorker
from services.inference_server.champions import ChampionBook
from services.vllm_serving.reconciler import VllmReconciler, audit_refusals
from services.vllm_serving.replica import ReplicaUnavailable, Served
from tests.registry_fixtures import corrupt, write_adapter


class MemoryReplica:
    """What a vLLM replica keeps: runtime-loaded names, lost on restart."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.loaded: dict[str, str] = {}
        self.up = True
        self.load_calls: list[str] = []

    async def served(self) -> Served:
        if not self.up:
            raise ReplicaUnavailable(f"{self.url} down")
        return Served("base", frozenset({"base", *self.loaded}))

    async def load(self, name: str, path: str) -> None:
        self.load_calls.append(name)
        self.loaded[name] = path

    async def unload(self, name: str) -> None:
        self.loaded.pop(name)

    async def close(self) -> None:
        pass

    def restart(self) -> None:
        self.loaded.clear()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def promotion(task: str, adapter_id: str | None, at: str, canary=None) -> bytes:
    return json.dumps({"task": task, "adapter_id": adapter_id, "at": at, "canary": canary}).encode()


def reconciler(tmp_path: Path, replicas: list[MemoryReplica], clock: Clock, refusals: list):
    async def refused(name: str, reason: str) -> None:
        refusals.append((name, reason))

    return VllmReconciler(
        replicas=replicas,  # type: ignore[arg-type]
        book=ChampionBook(),
        adapters_dir=tmp_path,
        replica_adapters_dir="/mnt/adapters",
        grace_s=30.0,
        clock=clock,
        on_refused=refused,
    )


def test_promotions_are_loaded_everywhere_reloaded_after_a_restart_and_unloaded_after_grace(
    tmp_path,
):
    first, second = write_adapter(tmp_path, b"one"), write_adapter(tmp_path, b"two")
    replicas = [MemoryReplica("http://r0"), MemoryReplica("http://r1")]
    clock, refusals = Clock(), []
    subject = reconciler(tmp_path, replicas, clock, refusals)

    assert subject.apply_promotion(promotion("spam", first, "2026-12-01T10:00:00Z"))
    asyncio.run(subject.reconcile_once())
    assert all(r.loaded == {f"spam@{first}": f"/mnt/adapters/{first}"} for r in replicas)

    replicas[1].restart()
    subject.apply_promotion(promotion("spam", second, "2026-12-01T10:05:00Z"))
    clock.now = 10.0
    asyncio.run(subject.reconcile_once())
    assert set(replicas[0].loaded) == {f"spam@{first}", f"spam@{second}"}
    assert set(replicas[1].loaded) == {f"spam@{second}"}  # the old one is not brought back

    clock.now = 40.0
    asyncio.run(subject.reconcile_once())
    assert all(set(r.loaded) == {f"spam@{second}"} for r in replicas)
    assert refusals == []


def test_a_stale_promotion_changes_nothing(tmp_path):
    first = write_adapter(tmp_path, b"one")
    subject = reconciler(tmp_path, [MemoryReplica("http://r0")], Clock(), [])
    assert subject.apply_promotion(promotion("spam", first, "2026-12-01T10:00:00Z"))
    assert not subject.apply_promotion(promotion("spam", None, "2026-12-01T09:00:00Z"))
    assert subject.desired() == {f"spam@{first}"}


def test_a_corrupted_adapter_is_refused_once_and_never_sent_to_a_replica(tmp_path):
    bad = write_adapter(tmp_path, b"weights")
    corrupt(tmp_path, bad)
    replica = MemoryReplica("http://r0")
    refusals: list = []
    subject = reconciler(tmp_path, [replica], Clock(), refusals)
    subject.apply_promotion(promotion("spam", bad, "2026-12-01T10:00:00Z"))
    asyncio.run(subject.reconcile_once())
    asyncio.run(subject.reconcile_once())
    assert replica.load_calls == []
    assert [name for name, _ in refusals] == [f"spam@{bad}"]
    assert "corrupted" in refusals[0][1]
    assert subject.status()["refused"] == {f"spam@{bad}": refusals[0][1]}


def test_a_refused_version_is_an_alert_in_the_audit_log_once(tmp_path):
    bad = write_adapter(tmp_path, b"weights")
    corrupt(tmp_path, bad)
    store = StoreWorker(tmp_path / "store.duckdb")
    store.open()
    try:
        subject = reconciler(tmp_path, [MemoryReplica("http://r0")], Clock(), [])
        subject.on_refused = audit_refusals(store)
        subject.apply_promotion(promotion("spam", bad, "2026-12-01T10:00:00Z"))
        asyncio.run(subject.reconcile_once())
        asyncio.run(subject.reconcile_once())
        entries = asyncio.run(store.call(audit_entries, task="spam"))
    finally:
        store.close()
    assert [(e["actor"], e["action"]) for e in entries] == [
        ("vllm-reconciler", "alert:adapter_refused")
    ]
    assert entries[0]["details"]["adapter_id"] == bad
    assert "corrupted" in entries[0]["details"]["reason"]


def test_a_replica_that_is_down_is_reported_and_the_others_still_served(tmp_path):
    first = write_adapter(tmp_path, b"one")
    down, up = MemoryReplica("http://down"), MemoryReplica("http://up")
    down.up = False
    subject = reconciler(tmp_path, [down, up], Clock(), [])
    subject.apply_promotion(
        promotion(
            "spam", None, "2026-12-01T10:00:00Z", canary={"adapter_id": first, "fraction": 0.1}
        )
    )
    asyncio.run(subject.reconcile_once())
    assert set(up.loaded) == {f"spam@{first}"}
    status = subject.status()["replicas"]
    assert status["http://down"]["up"] is False and "down" in status["http://down"]["last_error"]
    assert status["http://up"]["up"] is True


class SurprisingReplica(MemoryReplica):
    """Fails its first check with an error nobody planned for."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.checks = 0

    async def served(self) -> Served:
        self.checks += 1
        if self.checks == 1:
            raise RuntimeError("surprise")
        return await super().served()


def test_an_unexpected_error_fails_one_pass_not_the_loop(tmp_path):
    first = write_adapter(tmp_path, b"one")
    replica = SurprisingReplica("http://r0")
    subject = reconciler(tmp_path, [replica], Clock(), [])
    subject.poll_s = 0.01
    subject.apply_promotion(promotion("spam", first, "2026-12-01T10:00:00Z"))

    async def run_briefly() -> None:
        loop = asyncio.create_task(subject.run())
        await asyncio.sleep(0.2)
        loop.cancel()

    asyncio.run(run_briefly())
    assert replica.checks > 1 and set(replica.loaded) == {f"spam@{first}"}
