"""Retention: raw events that never became ground truth leave the store after a while.

A task's ``retention.raw_inference_days`` bounds how long the store keeps an inference event
that nobody corrected, edited or accepted. Anything that did become ground truth, or that a
snapshot trained or evaluated on (lineage), or that the regression set remembers, or that a
reviewer holds right now, stays whatever its age. With the expired inferences go what hangs
off them only (their feedback and review items) and the task's rejected events of that age.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb

from schemas.tasks import TaskDefinition

_EXPIRED = """
    SELECT i.event_id FROM inferences i
    WHERE i.task = $task AND i.ingested_at < $cutoff
      AND i.event_id NOT IN (SELECT inference_id FROM ground_truth WHERE task = $task)
      AND i.event_id NOT IN (SELECT inference_id FROM snapshot_examples)
      AND i.event_id NOT IN (SELECT inference_id FROM regression_examples)
      AND i.event_id NOT IN (
          SELECT inference_id FROM review_items
          WHERE done_at IS NULL AND lease_expires_at > $now
      )
"""


@dataclass(frozen=True, slots=True)
class Expired:
    """What a task's retention period removes (or would remove) from the store."""

    task: str
    cutoff: datetime
    inferences: int
    rejected_events: int

    def as_dict(self) -> dict[str, object]:
        return {
            "task": self.task,
            "stored_before": self.cutoff.isoformat() + "Z",
            "inferences": self.inferences,
            "rejected_events": self.rejected_events,
        }


def cutoff_of(task: TaskDefinition, now: datetime) -> datetime | None:
    """Events stored before this time have expired; None when the task keeps them forever."""
    days = task.retention.raw_inference_days
    return None if days is None else now - timedelta(days=days)


def expired_raw_events(
    connection: duckdb.DuckDBPyConnection, *, task: TaskDefinition, now: datetime
) -> Expired | None:
    """Count what the task's retention period would remove at ``now`` (naive UTC)."""
    cutoff = cutoff_of(task, now)
    if cutoff is None:
        return None
    params = {"task": task.name, "cutoff": cutoff, "now": now}
    (inferences,) = _one(connection, f"SELECT count(*) FROM ({_EXPIRED})", params)
    (rejected,) = _one(
        connection,
        "SELECT count(*) FROM rejected_events WHERE task = $task AND received_at < $cutoff",
        {"task": task.name, "cutoff": cutoff},
    )
    return Expired(task.name, cutoff, int(inferences), int(rejected))


def delete_expired_raw_events(
    connection: duckdb.DuckDBPyConnection, *, task: TaskDefinition, now: datetime
) -> Expired | None:
    """Delete what ``expired_raw_events`` counts, in the caller's transaction. The ids are
    fixed first, so feedback, review items and inferences go for the same set."""
    expired = expired_raw_events(connection, task=task, now=now)
    if expired is None:
        return None
    params = {"task": task.name, "cutoff": expired.cutoff, "now": now}
    connection.execute(f"CREATE OR REPLACE TEMP TABLE expired_ids AS {_EXPIRED}", params)
    try:
        for table in ("feedback", "review_items"):
            connection.execute(
                f"DELETE FROM {table} WHERE inference_id IN (SELECT event_id FROM expired_ids)"
            )
        connection.execute("DELETE FROM inferences WHERE event_id IN (SELECT * FROM expired_ids)")
    finally:
        connection.execute("DROP TABLE IF EXISTS expired_ids")
    connection.execute(
        "DELETE FROM rejected_events WHERE task = $task AND received_at < $cutoff",
        {"task": task.name, "cutoff": expired.cutoff},
    )
    return expired


def _one(connection: duckdb.DuckDBPyConnection, sql: str, params: dict[str, object]) -> tuple:
    row = connection.execute(sql, params).fetchone()
    assert row is not None  # an aggregate always answers one row
    return row
