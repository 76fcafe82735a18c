"""``flywheel gc``: retention of raw events and garbage collection of adapters, in one pass.

The control plane runs it on the store thread (on the scheduler's clock, or for ``POST
/v1/gc``); with the control plane stopped the CLI runs it on the DuckDB file itself. A dry run
answers the same report and changes nothing. The store's rows go in one transaction, the
adapter directories only after it committed, and the audit log records who collected what
(counts and ids, never an event's content).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from feedback.retention import delete_expired_raw_events, expired_raw_events
from training.adapter_gc import find_adapter_garbage, remove_adapter_dirs, unregister_adapters
from training.registry import audit, transaction
from training.task_records import list_tasks


def collect_garbage(
    connection: duckdb.DuckDBPyConnection,
    *,
    adapters_dir: Path,
    actor: str,
    dry_run: bool,
    always_audit: bool = True,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Remove (or with ``dry_run`` only list) expired raw events of every task with a
    retention period, collectable adapters and orphan adapter directories. Audited as ``gc``
    by ``actor``; with ``always_audit`` False (the scheduler) only when something went."""
    now = now or datetime.now(UTC).replace(tzinfo=None)
    tasks = list_tasks(connection)
    garbage = find_adapter_garbage(connection, adapters_dir=adapters_dir, now=now)
    if dry_run:
        expired = [expired_raw_events(connection, task=t, now=now) for t in tasks]
        return _report(expired, garbage.as_dict(), dry_run=True)
    with transaction(connection):
        expired = [delete_expired_raw_events(connection, task=t, now=now) for t in tasks]
        unregister_adapters(connection, garbage)
        report = _report(expired, garbage.as_dict(), dry_run=False)
        if always_audit or _collected_anything(report):
            audit(connection, actor=actor, action="gc", task=None, details=_audited(report))
    remove_adapter_dirs(garbage, adapters_dir=adapters_dir)
    return report


def _report(expired: list[Any], adapters: dict[str, list[str]], *, dry_run: bool) -> dict:
    return {
        "dry_run": dry_run,
        "raw_events": [e.as_dict() for e in expired if e is not None],
        **adapters,
    }


def _collected_anything(report: dict[str, Any]) -> bool:
    events = sum(e["inferences"] + e["rejected_events"] for e in report["raw_events"])
    return bool(events or report["adapters"] or report["orphan_dirs"])


def _audited(report: dict[str, Any]) -> dict[str, Any]:
    """What the audit log keeps: counts per task, adapter ids, directory names."""
    return {
        "raw_events": {
            e["task"]: {"inferences": e["inferences"], "rejected_events": e["rejected_events"]}
            for e in report["raw_events"]
        },
        "adapters": report["adapters"],
        "orphan_dirs": report["orphan_dirs"],
    }
