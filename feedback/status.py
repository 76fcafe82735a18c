"""Read-only summaries of the store for ``flywheel status`` and the API."""

from __future__ import annotations

import json
from typing import Any

import duckdb

from feedback.writer import TABLE_OF_TYPE


def store_summary(connection: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Stored and rejected counts per event type and per task, ground truth, pending joins."""
    cursor = connection.cursor()
    events = {t: {"stored": 0, "rejected": 0} for t in TABLE_OF_TYPE}
    tasks: dict[str, dict[str, Any]] = {}

    def task_entry(task: str) -> dict[str, Any]:
        return tasks.setdefault(
            task,
            {
                "events": {t: {"stored": 0, "rejected": 0} for t in TABLE_OF_TYPE},
                "ground_truth": 0,
            },
        )

    for event_type, table in TABLE_OF_TYPE.items():
        for task, count in cursor.execute(
            f"SELECT task, count(*) FROM {table} GROUP BY task"
        ).fetchall():
            events[event_type]["stored"] += count
            task_entry(task)["events"][event_type]["stored"] = count
    unknown_type = 0
    for event_type, task, count in cursor.execute(
        "SELECT event_type, task, count(*) FROM rejected_events GROUP BY ALL"
    ).fetchall():
        if event_type in events:
            events[event_type]["rejected"] += count
            if task:
                task_entry(task)["events"][event_type]["rejected"] += count
        else:
            unknown_type += count
    for task, count in cursor.execute(
        "SELECT task, count(*) FROM ground_truth GROUP BY task"
    ).fetchall():
        task_entry(task)["ground_truth"] = count
    reasons = cursor.execute(
        "SELECT reason, count(*) AS n FROM rejected_events GROUP BY reason ORDER BY n DESC, reason "
        "LIMIT 10"
    ).fetchall()
    pending = cursor.execute(
        "SELECT count(*) FROM ("
        "  SELECT inference_id FROM corrections UNION ALL SELECT inference_id FROM feedback"
        ") e WHERE inference_id NOT IN (SELECT event_id FROM inferences)"
    ).fetchone()
    for task, cycle_id, state, verdict, progress in cursor.execute(
        "SELECT task, cycle_id, state, verdict, progress FROM cycles "
        "QUALIFY row_number() OVER (PARTITION BY task ORDER BY started_at DESC) = 1"
    ).fetchall():
        task_entry(task)["latest_cycle"] = {
            "cycle_id": cycle_id,
            "state": state,
            "verdict": verdict,
            "progress": json.loads(progress) if progress else None,
        }
    for task, adapter_id in cursor.execute(
        "SELECT task, adapter_id FROM champion_history WHERE until IS NULL"
    ).fetchall():
        task_entry(task)["champion"] = adapter_id
    cursor.close()
    return {
        "events": events,
        "rejected_unknown_type": unknown_type,
        "tasks": dict(sorted(tasks.items())),
        "awaiting_inference": int(pending[0]) if pending else 0,
        "top_rejection_reasons": [{"reason": r, "count": n} for r, n in reasons],
    }
