"""The live guard: reads ``flywheel.live_counts`` and acts on what live traffic says.

Every few seconds it sums each running canary's windows and its champion's over the same
period, asks ``training.live_decisions.decide_canary``, and applies a promote or roll-back
through ``CycleRunner.end_canary`` (one transaction, audited with the evidence, published on
``flywheel.promotions``). The topic is read from its beginning with no consumer group, so a
restarted control plane sees every window again (the newest message of a window wins).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from schemas.tasks import CanaryPolicy
from schemas.topics import LIVE_COUNTS
from services.control_plane.alert_webhook import post_alert
from services.control_plane.cycle_runner import CycleRunner
from services.control_plane.live_rebuild import store_windows
from services.control_plane.replay_start import oldest_event_time
from services.control_plane.store_worker import StoreWorker
from services.live_monitor.process import LiveMonitorProcess
from training.canaries import active_canaries
from training.live_alerts import raise_alert
from training.live_decisions import LiveDecision, Outcomes, decide_canary, detect_drift, total
from training.registry import RegistryError, champion_history, rollback_target
from training.task_records import get_task

log = logging.getLogger(__name__)

WindowKey = tuple[str, str | None, int]
"""(task, adapter id or None for the base model, window start in Unix seconds)."""


@dataclass
class LiveWindows:
    """Every window's counts: the newest the monitor published, plus what the store held of
    events from before the monitor's replay (``live_rebuild``); each event is in one of them."""

    published: dict[WindowKey, Outcomes] = field(default_factory=dict)
    from_store: dict[WindowKey, Outcomes] = field(default_factory=dict)
    window_s: int = 60

    @property
    def counts(self) -> dict[WindowKey, Outcomes]:
        merged = dict(self.from_store)
        for key, counts in self.published.items():
            merged[key] = merged[key] + counts if key in merged else counts
        return merged

    def add_message(self, raw: bytes | None) -> None:
        try:
            message = json.loads(raw or b"")
            key = (str(message["task"]), message.get("adapter_id"), int(message["window_start"]))
            self.window_s = int(message.get("window_s", self.window_s))
            self.published[key] = Outcomes.from_counts(message["counts"])
        except (ValueError, KeyError, TypeError, AttributeError):
            log.warning("ignored a malformed live-counts message: %r", (raw or b"")[:200])

    def since(self, task: str, adapter_id: str | None, start: float) -> Outcomes:
        """The version's outcomes in windows from the one holding ``start`` on."""
        first = math.floor(start / self.window_s) * self.window_s
        return total(
            counts
            for (name, version, window), counts in self.counts.items()
            if name == task and version == adapter_id and window >= first
        )

    def of_version(self, task: str, adapter_id: str | None) -> list[tuple[int, Outcomes]]:
        """The version's windows, oldest first."""
        return sorted(
            (window, counts)
            for (name, version, window), counts in self.counts.items()
            if name == task and version == adapter_id
        )

    def series(self, task: str) -> list[dict[str, Any]]:
        """Per window and version: counts and negative rate (for the console's chart)."""
        return [
            {"adapter_id": v, "window_start": w, **c.as_dict(), "negative_rate": c.negative_rate}
            for (name, v, w), c in sorted(
                self.counts.items(), key=lambda i: (i[0][2], str(i[0][1]))
            )
            if name == task
        ]


class LiveGuard:
    def __init__(
        self,
        *,
        bootstrap: str,
        store: StoreWorker,
        runner: CycleRunner,
        check_interval_s: float,
        monitor: LiveMonitorProcess | None,
        webhook_url: str | None = None,
        drift_min_events: int = 30,
        window_s: int = 60,
    ) -> None:
        self.bootstrap = bootstrap
        self.store = store
        self.runner = runner
        self.check_interval_s = check_interval_s
        self.monitor = monitor
        self.windows = LiveWindows(window_s=window_s)
        self.last_decisions: dict[str, dict[str, Any]] = {}
        """Per task: the canary's latest decision and its evidence (for status views)."""
        self.webhook_url = webhook_url
        self.drift_min_events = drift_min_events
        self._alerted: set[tuple[str, str | None, str, int]] = set()
        self._consumer: AIOKafkaConsumer | None = None
        self._stopping = False

    async def start(self) -> None:
        """Rebuild the windows of events the monitor cannot replay from the store, remember
        the alerts already raised, then read ``flywheel.live_counts`` from its beginning.
        Call it before the ingest agent starts, so the store holds no event the monitor
        will also count."""
        await self.rebuild_from_store()
        self._alerted |= await self.store.call(_raised_alerts)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            group_id=None,
            fetch_max_wait_ms=200,
            client_id="flywheel-live-guard",
        )
        await consumer.start()
        partitions = consumer.partitions_for_topic(LIVE_COUNTS) or set()
        assigned = [TopicPartition(LIVE_COUNTS, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        self._consumer = consumer

    async def rebuild_from_store(self) -> None:
        try:
            before = await oldest_event_time(self.bootstrap)
        except (TimeoutError, KafkaError) as error:  # then the monitor's counts alone
            log.error("cannot tell where the monitor's replay starts (%r): no rebuild", error)
            return
        cutoff = before or datetime.now(UTC).replace(tzinfo=None)
        rebuilt = await self.store.call(
            store_windows, window_s=self.windows.window_s, before=cutoff
        )
        self.windows.from_store = {k: Outcomes.from_counts(c) for k, c in rebuilt.items()}
        log.info("live windows rebuilt from the store (events before %s): %d", cutoff, len(rebuilt))

    async def run(self) -> None:
        """Read live counts and decide canaries and drift until ``request_stop()``."""
        assert self._consumer is not None, "start() first"
        next_check = 0.0
        loop = asyncio.get_running_loop()
        while not self._stopping:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=10_000)
            for records in batches.values():
                for record in records:
                    self.windows.add_message(record.value)
            if loop.time() >= next_check:
                next_check = loop.time() + self.check_interval_s
                if self.monitor is not None:
                    self.monitor.ensure_running()
                await self.check_canaries()
                await self.check_drift()

    async def check_canaries(self) -> None:
        """Decide every running canary; apply promote or roll back."""
        for canary in await self.store.call(active_canaries):
            decision = self.decide(canary)
            task = canary["task"]
            self.last_decisions[task] = {
                "adapter_id": canary["adapter_id"],
                "decided_at": datetime.now(UTC).isoformat(),
                **decision.evidence(),
            }
            if decision.action == "watch":
                continue
            log.warning("canary %s of %s: %s", canary["adapter_id"], task, decision.reason)
            try:
                await self.runner.end_canary(
                    task,
                    decision.action,
                    actor="live-guard",
                    reason=decision.reason,
                    evidence=decision.evidence(),
                )
            except RegistryError as error:  # ended by hand in between, or refused files
                log.error("could not %s the canary of %s: %s", decision.action, task, error)

    async def check_drift(self) -> None:
        """Compare each champion's newest window with its own first window after promotion
        and with the previous champion's last window; alert (once per window) when worse,
        then apply the task's drift policy."""
        for task, current in (await self.store.call(_live_champions)).items():
            windows = self.windows.of_version(task, current["adapter_id"])
            windows = [(w, c) for w, c in windows if w + self.windows.window_s > current["since_s"]]
            if not windows:
                continue
            newest_start, newest = windows[-1]
            baselines: dict[str, Outcomes] = {}
            if len(windows) > 1:
                baselines["first_window"] = windows[0][1]
            before = (
                [
                    (w, c)
                    for w, c in self.windows.of_version(task, current["previous"])
                    if w < current["since_s"]
                ]
                if current["has_previous"]
                else []
            )
            if before:
                baselines["previous_champion"] = before[-1][1]
            for alert in detect_drift(newest, baselines, min_events=self.drift_min_events):
                key = (task, current["adapter_id"], alert.baseline, newest_start)
                if key not in self._alerted:
                    self._alerted.add(key)
                    evidence = {**alert.evidence(), "window_start": newest_start}
                    await self._alert(task, current, alert.baseline, evidence)

    async def _alert(
        self, task: str, current: dict[str, Any], baseline: str, evidence: dict[str, Any]
    ) -> None:
        policy = current["drift_policy"]
        log.warning("drift alert on %s (%s): %s", task, policy, evidence["reason"])
        await self.store.call(
            raise_alert,
            task=task,
            adapter_id=current["adapter_id"],
            baseline=baseline,
            action=policy,
            evidence=evidence,
        )
        if self.webhook_url:
            await post_alert(
                self.webhook_url,
                {
                    "task": task,
                    "policy": policy,
                    **evidence,
                    "adapter_id": current["adapter_id"],
                    "baseline": baseline,
                },
            )
        try:
            if policy == "rollback":
                target = await self.store.call(rollback_target, task)
                await self.runner.promote(
                    task, target, actor="live-guard", action="rollback", reason=evidence["reason"]
                )
            elif policy == "retrain":
                await self.runner.start(task, trigger="drift")
        except Exception as error:  # an alert is raised either way; say why the policy failed
            log.error("drift policy %s of %s failed: %s", policy, task, error)

    def decide(self, canary: dict[str, Any]) -> LiveDecision:
        started = datetime.fromisoformat(canary["started_at"].replace("Z", "+00:00"))
        started = started if started.tzinfo else started.replace(tzinfo=UTC)
        start_s = started.timestamp()
        task = canary["task"]
        return decide_canary(
            self.windows.since(task, canary["adapter_id"], start_s),
            self.windows.since(task, canary["champion_id"], start_s),
            CanaryPolicy.model_validate(canary["policy"]),
            elapsed_s=datetime.now(UTC).timestamp() - start_s,
        )

    def request_stop(self) -> None:
        """End ``run()`` after its current read (at most 200 ms) or check; the control plane's
        shutdown waits for it, so the monitor is not restarted while it stops."""
        self._stopping = True

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None


def _live_champions(connection: Any) -> dict[str, dict[str, Any]]:
    """Per task with a champion change: the live adapter, since when (Unix seconds), the
    previous champion and the task's drift policy."""
    found = {}
    for (task,) in connection.execute("SELECT DISTINCT task FROM champion_history").fetchall():
        history = champion_history(connection, task)
        definition = get_task(connection, task)
        if not history or definition is None:
            continue
        live = history[-1]
        since = datetime.fromisoformat(live["since"]).replace(tzinfo=UTC).timestamp()
        found[task] = {
            "adapter_id": live["adapter_id"],
            "since_s": since,
            "previous": history[-2]["adapter_id"] if len(history) > 1 else None,
            "has_previous": len(history) > 1,
            "drift_policy": definition.drift_policy,
        }
    return found


def _raised_alerts(connection: Any) -> set[tuple[str, str | None, str, int]]:
    """The windows already alerted on (a restart must not alert, roll back or retrain on
    the same window twice)."""
    rows = connection.execute(
        "SELECT task, adapter_id, baseline, json_extract(evidence, '$.window_start') "
        "FROM live_alerts"
    ).fetchall()
    return {(t, a, b, int(w)) for t, a, b, w in rows if w is not None}
