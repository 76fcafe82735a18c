"""Runs one retraining cycle for a task: snapshot → train + evaluate (child process) → gate.

The heavy work runs in ``python -m training.cycle_worker`` so the control plane's event loop
never blocks; the worker reports progress as JSON lines on stdout, which renew the cycle's
lease. Only a worker that exits cleanly with a result gets its adapter registered: the
registration, the gate's verdict, its audit entry and (when the gate promotes) the champion
change are one store transaction (``record_outcome``), so a crash or kill leaves nothing
half-registered. Every champion change goes through ``training.registry.promote`` in one
store call; this module adds only the Kafka message that tells the inference servers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
from aiokafka import AIOKafkaProducer

from feedback.snapshots import build_snapshot
from schemas.tasks import CanaryPolicy, TaskDefinition
from schemas.topics import PROMOTIONS
from services.child_processes import ends_with_parent
from services.control_plane.store_worker import StoreWorker
from training import job_queue, registry
from training.canaries import canary_policy, end_canary, start_canary
from training.cycle_records import decided_cycles, start_cycle, update_cycle
from training.diagnosis import diagnose
from training.promotion_gate import GateDecision, decide
from training.recipe_search import past_cycle, plan_search
from training.registry import AdapterRefusedError, get_adapter
from training.taint import taint_on_arrival, training_parent
from training.task_records import get_task

log = logging.getLogger(__name__)


class CycleError(Exception):
    """A cycle could not run; the message says why."""


@dataclass(frozen=True)
class CyclePaths:
    base_model: str | None
    """FLYWHEEL_BASE_MODEL: a local HF directory, or None for the bundled SmolLM2."""
    models_dir: Path
    adapters_dir: Path
    snapshots_dir: Path
    cycles_dir: Path


class CycleRunner:
    """Starts cycles (at most one per task) and carries them to a decision."""

    def __init__(
        self,
        *,
        store: StoreWorker,
        producer: AIOKafkaProducer | None,
        paths: CyclePaths,
        lease_s: float,
        timeout_s: float,
        remote: bool = False,
    ) -> None:
        self.store = store
        self.remote = remote
        self.producer = producer
        self.paths = paths
        self.lease_s = lease_s
        self.timeout_s = timeout_s
        self.running: dict[str, asyncio.Task[None]] = {}

    async def start(self, task_name: str, *, trigger: str) -> str | None:
        """Open a cycle and run it in the background; None when the task already has one."""
        task = await self.store.call(get_task, task_name)
        if task is None:
            raise CycleError(f"no task named {task_name}; create it with flywheel task create")
        cycle_id = await self.store.call(
            start_cycle, task=task_name, trigger=trigger, lease_s=self.lease_s
        )
        if cycle_id is None:
            return None
        runner = asyncio.create_task(self._run(cycle_id, task), name=f"cycle-{task_name}")
        self.running[cycle_id] = runner
        runner.add_done_callback(lambda _: self.running.pop(cycle_id, None))
        return cycle_id

    async def stop(self) -> None:
        for runner in list(self.running.values()):
            runner.cancel()
        await asyncio.gather(*self.running.values(), return_exceptions=True)

    async def _run(self, cycle_id: str, task: TaskDefinition) -> None:
        try:
            await self._run_steps(cycle_id, task)
        except asyncio.CancelledError:
            await self.store.call(
                update_cycle,
                cycle_id,
                state="failed",
                error="the control plane stopped during the cycle",
            )
            raise
        except Exception as error:
            log.exception("cycle %s of %s failed", cycle_id, task.name)
            await self.store.call(update_cycle, cycle_id, state="failed", error=str(error))

    async def _run_steps(self, cycle_id: str, task: TaskDefinition) -> None:
        # A champion that learned from erased data is neither warm-started from nor gated
        # against: its newest untainted ancestor (or the base model) is (training.taint).
        champion_id = await self.store.call(training_parent, task.name)
        champion_record = champion_id and await self.store.call(get_adapter, champion_id)
        baseline = champion_record.snapshot_id if champion_record else None
        snapshot = await self.store.call(
            build_snapshot,
            task=task,
            snapshots_dir=self.paths.snapshots_dir,
            baseline_snapshot_id=baseline,
        )
        await self.store.call(
            update_cycle,
            cycle_id,
            state="training",
            lease_s=self.lease_s,
            snapshot_id=snapshot.snapshot_id,
        )
        if snapshot.count(split="train", new=True) == 0:
            raise CycleError("no new training examples since the champion's snapshot")
        history = await self.store.call(decided_cycles, task.name)
        search = plan_search([past_cycle(c) for c in history], task.training)
        job = {
            "cycle_id": cycle_id,
            "task": task.model_dump(mode="json"),
            "snapshot_id": snapshot.snapshot_id,
            "snapshot_path": str(snapshot.path),
            "base_model": self.paths.base_model,
            "models_dir": str(self.paths.models_dir),
            "champion_adapter_id": champion_id,
            "champion_adapter_path": str(champion_record.path) if champion_record else None,
            "adapters_dir": str(self.paths.adapters_dir),
            "search": search.as_dict(),
        }
        result = await self._run_worker(cycle_id, job)
        await self._record(cycle_id, task, snapshot.snapshot_id, champion_id, result)

    async def _run_worker(self, cycle_id: str, job: dict[str, Any]) -> dict[str, Any]:
        work = self.paths.cycles_dir / cycle_id
        work.mkdir(parents=True, exist_ok=True)
        (work / "job.json").write_text(json.dumps(job))
        runs = self._remote(cycle_id, work) if self.remote else self._local(cycle_id, work)
        try:
            return await asyncio.wait_for(runs, self.timeout_s)
        except TimeoutError:
            raise CycleError(
                f"the cycle ran longer than FLYWHEEL_CYCLE_TIMEOUT_S ({self.timeout_s:.0f} s) "
                "and was stopped; nothing was registered. A slow machine, long inputs or a busy "
                "CPU need a higher limit: its progress shows how far it got"
            ) from None

    async def _local(self, cycle_id: str, work: Path) -> dict[str, Any]:
        """Run the training worker as a child process; it is killed if this is cancelled
        (the time limit, or the control plane stopping)."""
        with open(work / "worker.log", "ab") as worker_log:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "training.cycle_worker",
                str(work / "job.json"),
                str(work / "result.json"),
                stdout=asyncio.subprocess.PIPE,
                stderr=worker_log,
                preexec_fn=ends_with_parent(signal.SIGKILL),  # registers nothing without us
            )
            try:
                await self._follow(cycle_id, process)
            except asyncio.CancelledError:
                process.kill()
                await process.wait()
                raise
        if process.returncode != 0:
            raise CycleError(
                f"the training worker exited with code {process.returncode}; see {work}/worker.log"
            )
        return json.loads((work / "result.json").read_text())

    async def _follow(self, cycle_id: str, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        async for line in process.stdout:
            await self._progress(cycle_id, line)
        await process.wait()

    async def _progress(self, cycle_id: str, line: bytes) -> None:
        """Record one JSON progress line of a worker and renew the cycle's lease."""
        try:
            progress = json.loads(line)
        except ValueError:
            return
        state = "evaluating" if progress.get("phase") == "evaluating" else "training"
        await self.store.call(
            update_cycle, cycle_id, lease_s=self.lease_s, state=state, progress=progress
        )

    async def _remote(self, cycle_id: str, work: Path) -> dict[str, Any]:
        """Queue the job for a training worker on another machine and follow it through the
        shared store until it leaves a result or a failure."""
        job_queue.enqueue(work)
        log.info("cycle %s queued for a training worker (flywheel train --watch)", cycle_id)
        offset, heard, beat = 0, time.monotonic(), ""
        while True:
            # A new heartbeat from the worker counts as hearing from it (compared by content,
            # not by the file's time: the worker's clock may differ from this machine's).
            current = _read(work / job_queue.HEARTBEAT)
            if current != beat:
                beat, heard = current, time.monotonic()
            progress = work / job_queue.PROGRESS
            if progress.exists():
                with open(progress, "rb") as handle:
                    handle.seek(offset)
                    lines = handle.readlines()
                complete = [line for line in lines if line.endswith(b"\n")]
                offset += sum(len(line) for line in complete)
                for line in complete:
                    await self._progress(cycle_id, line)
                heard = time.monotonic() if complete else heard
            if (work / job_queue.RESULT).exists():
                return json.loads((work / job_queue.RESULT).read_text())
            if (work / job_queue.FAILED).exists():
                reason = (work / job_queue.FAILED).read_text().strip()[-2000:]
                raise CycleError(f"the training worker failed: {reason}")
            if not (work / job_queue.CLAIMED).exists():
                heard = time.monotonic()  # waiting in the queue is not silence
                await self.store.call(
                    update_cycle, cycle_id, lease_s=self.lease_s, progress={"phase": "queued"}
                )
            elif time.monotonic() - heard > self.lease_s:
                raise CycleError(
                    f"the training worker went silent for {self.lease_s:.0f} s "
                    f"({(work / job_queue.CLAIMED).read_text().strip()})"
                )
            await asyncio.sleep(0.5)

    async def _record(
        self,
        cycle_id: str,
        task: TaskDefinition,
        snapshot_id: str,
        champion_id: str | None,
        result: dict[str, Any],
    ) -> None:
        decision = decide(result["scores"], task.gate, metric=task.metric)
        # What the cycle trained with and what that cost the data (the resolved recipe,
        # inputs cut to fit) sits beside the gate's numbers, where an operator reads them.
        decision.evidence["training"] = result.get("training", {})
        # ...and, in words an operator can act on, what most likely held the candidate back.
        decision.evidence["diagnosis"] = diagnose(decision.evidence)
        log.info(
            "cycle %s of %s: %s (%s)",
            cycle_id,
            task.name,
            decision.verdict,
            "; ".join(decision.reasons),
        )
        message = await self.store.call(
            record_outcome,
            cycle_id=cycle_id,
            task=task.name,
            snapshot_id=snapshot_id,
            champion_id=champion_id,
            result=result,
            decision=decision,
        )
        if message is not None:
            await self._publish(message)
        if decision.verdict == "reject":
            shutil.rmtree(self.paths.cycles_dir / cycle_id / "scratch", ignore_errors=True)

    async def promote(
        self, task: str, adapter_id: str | None, *, actor: str, action: str, reason: str
    ) -> dict[str, Any]:
        """Change the champion in one store transaction (``training.registry.promote``: files
        verified, alias moved, fixed mistakes remembered), then tell the inference servers.
        An adapter whose files no longer hash to its name is refused (AdapterRefusedError)."""
        message = await self.store.call(
            registry.promote,
            task=task,
            adapter_id=adapter_id,
            actor=actor,
            action=action,
            reason=reason,
        )
        await self._publish(message)
        return message

    async def approve(
        self, task: str, adapter_id: str, *, actor: str, reason: str
    ) -> dict[str, Any]:
        """An approved candidate goes live: as a canary when the task's gate says so,
        otherwise as the champion (``promote``)."""
        policy = await self.store.call(canary_policy, task)
        if policy is None:
            return await self.promote(
                task, adapter_id, actor=actor, action="approve", reason=reason
            )
        message = await self.store.call(_start_canary_now, task, adapter_id, policy, actor, reason)
        await self._publish(message)
        return message

    async def end_canary(
        self, task: str, outcome: str, *, actor: str, reason: str, evidence: dict[str, Any]
    ) -> dict[str, Any]:
        """Promote or roll back the task's canary (``training.canaries``), then tell the
        inference servers."""
        message = await self.store.call(
            end_canary, task=task, outcome=outcome, actor=actor, reason=reason, evidence=evidence
        )
        await self._publish(message)
        return message

    async def _publish(self, message: dict[str, Any]) -> None:
        """Send a committed champion change to the inference servers (none when offline)."""
        if self.producer is not None:
            await self.producer.send_and_wait(
                PROMOTIONS, json.dumps(message).encode(), key=message["task"].encode()
            )


def _start_canary_now(
    connection: duckdb.DuckDBPyConnection,
    task: str,
    adapter_id: str,
    policy: CanaryPolicy,
    actor: str,
    reason: str,
) -> dict[str, Any]:
    with registry.transaction(connection):
        return start_canary(
            connection, task=task, adapter_id=adapter_id, policy=policy, actor=actor, reason=reason
        )


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def record_outcome(
    connection: duckdb.DuckDBPyConnection,
    *,
    cycle_id: str,
    task: str,
    snapshot_id: str,
    champion_id: str | None,
    result: dict[str, Any],
    decision: GateDecision,
) -> dict[str, Any] | None:
    """Register a cycle's candidate, record the gate's verdict and audit it, and promote the
    candidate when the gate says so: one transaction. Returns the promotion message to
    publish, or None when the champion stays."""
    adapter_id = result["adapter_id"]
    try:
        with registry.transaction(connection):
            registry.register_adapter(
                connection,
                adapter_id=adapter_id,
                task=task,
                base_model=result["base_model"],
                parent_adapter=champion_id,
                snapshot_id=snapshot_id,
                path=Path(result["adapter_path"]),
                metadata=result["metadata"],
            )
            erasure = taint_on_arrival(
                connection, adapter_id, snapshot_id=snapshot_id, parent_adapter=champion_id
            )
            if erasure is not None:  # erased while the cycle trained: never promoted
                decision = GateDecision(
                    "reject",
                    [
                        f"erasure {erasure} removed examples this candidate was trained or "
                        "evaluated on while its cycle ran; it is tainted and never promoted",
                        *decision.reasons,
                    ],
                    decision.evidence,
                )
            update_cycle(
                connection,
                cycle_id,
                state="decided",
                adapter_id=adapter_id,
                verdict=decision.verdict,
                decision=decision.as_dict(),
            )
            registry.audit(
                connection,
                actor="gate",
                action=f"gate:{decision.verdict}",
                task=task,
                details={
                    "cycle_id": cycle_id,
                    "adapter_id": adapter_id,
                    "reasons": decision.reasons,
                },
            )
            if decision.verdict != "promote":
                return None
            policy = canary_policy(connection, task)
            if policy is not None:  # live traffic decides: a canary first
                return start_canary(
                    connection,
                    task=task,
                    adapter_id=adapter_id,
                    policy=policy,
                    actor="gate",
                    reason="; ".join(decision.reasons),
                )
            return registry.change_champion(
                connection,
                task=task,
                adapter_id=adapter_id,
                actor="gate",
                action="promote",
                reason="; ".join(decision.reasons),
            )
    except AdapterRefusedError as refusal:
        registry.refused(
            connection, refusal, task=task, adapter_id=adapter_id, actor="gate", action="promote"
        )
        raise
