"""The retraining scheduler: apscheduler on the control plane's loop.

Every ``interval_s`` it checks each task's count trigger (enough new ground truth since the
task's last snapshot); tasks with a cron trigger also get a cron job. The cycle runner's
lease guarantees at most one cycle per task, so a trigger firing twice is harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from feedback.snapshots import new_ground_truth_since_last_snapshot
from services.control_plane.cycle_runner import CycleRunner
from services.control_plane.erasure_retrains import start_owed_retrains
from services.control_plane.store_worker import StoreWorker
from training.task_records import list_tasks

log = logging.getLogger(__name__)


class RetrainingScheduler:
    def __init__(self, *, store: StoreWorker, runner: CycleRunner, interval_s: float) -> None:
        self.store = store
        self.runner = runner
        self._scheduler = AsyncIOScheduler(timezone="UTC")
        self._scheduler.add_job(
            self.check_triggers,
            "interval",
            seconds=interval_s,
            id="count-triggers",
            max_instances=1,
            coalesce=True,
        )

    def add_housekeeping(self, job: Callable[[], Awaitable[None]], *, interval_s: float) -> None:
        """Also run ``job`` (garbage collection) every ``interval_s``, first after one interval."""
        self._scheduler.add_job(
            job, "interval", seconds=interval_s, id="housekeeping", max_instances=1, coalesce=True
        )

    def start(self) -> None:
        self._scheduler.start()

    def shutdown(self) -> None:
        self._scheduler.shutdown(wait=False)

    async def refresh_cron_jobs(self) -> None:
        """(Re)install one cron job per task that has a cron trigger."""
        for job in self._scheduler.get_jobs():
            if job.id.startswith("cron:"):
                job.remove()
        for task in await self.store.call(list_tasks):
            if task.triggers.cron:
                self._scheduler.add_job(
                    self._cron_cycle,
                    CronTrigger.from_crontab(task.triggers.cron, timezone="UTC"),
                    args=[task.name],
                    id=f"cron:{task.name}",
                    max_instances=1,
                    coalesce=True,
                )

    async def check_triggers(self) -> list[str]:
        """Start a cycle for every task whose count trigger is met, or that an erasure owes
        one (``erasure_retrains``); returns the cycle ids."""
        started = await start_owed_retrains(self.store, self.runner)
        for task in await self.store.call(list_tasks):
            threshold = task.triggers.min_new_examples
            if threshold is None:
                continue
            new = await self.store.call(new_ground_truth_since_last_snapshot, task.name)
            if new < threshold:
                continue
            cycle_id = await self.runner.start(task.name, trigger=f"{new} new examples")
            if cycle_id:
                log.info("started cycle %s for %s: %d new examples", cycle_id, task.name, new)
                started.append(cycle_id)
        return started

    async def _cron_cycle(self, task_name: str) -> None:
        cycle_id = await self.runner.start(task_name, trigger="cron")
        if cycle_id:
            log.info("started cycle %s for %s on its cron schedule", cycle_id, task_name)
