"""Start the retraining cycles that erasures owe (tasks whose tainted champion has the
``retrain`` policy): right after ``flywheel forget``, and on each scheduler tick while a
task's cycle slot is busy."""

from __future__ import annotations

import logging

from services.control_plane.cycle_runner import CycleError, CycleRunner
from services.control_plane.store_worker import StoreWorker
from training.taint import pending_retrains, retrain_started

log = logging.getLogger(__name__)


async def start_owed_retrains(store: StoreWorker, runner: CycleRunner) -> list[str]:
    """Start a cycle for every task an erasure owes one; returns the cycle ids. A task with a
    cycle already running keeps its debt until the next call."""
    started = []
    for task in await store.call(pending_retrains):
        try:
            cycle_id = await runner.start(task, trigger="erasure")
        except CycleError:  # the task was deleted since: nothing to retrain
            await store.call(retrain_started, task)
            continue
        if cycle_id is None:
            continue
        await store.call(retrain_started, task)
        log.info("started cycle %s for %s: its champion learned from erased data", cycle_id, task)
        started.append(cycle_id)
    return started
