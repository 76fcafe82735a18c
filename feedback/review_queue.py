"""The reviewer queue: which production answer a person should look at next.

Order of need: answers that got negative feedback (thumbs down, a rating of 1 or 2), then
answers the model was unsure of (mean token log-probability below a threshold, least sure
first), then a random calibration sample of the rest (a stable hash order, so two reviewers
never fight over the same "random" item). Answers that already are ground truth (corrected,
edited or accepted) never enter the queue.

An item is leased to one reviewer until the lease expires; only that reviewer can finish it.
Functions take the store connection and run on its single thread, so two reviewers asking at
the same moment get different items.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb

REASONS = {0: "negative feedback", 1: "low model confidence", 2: "calibration sample"}

# Pending items with their tier. Placeholders: low_confidence, task, task, now, reviewer,
# reviewer. A lease that expired frees its item; an item a reviewer skipped goes to others.
_PENDING = """
WITH negative AS (
    SELECT DISTINCT inference_id FROM feedback
    WHERE signal = 'thumbs_down' OR (signal = 'rating' AND rating <= 2)
), settled AS (
    SELECT inference_id FROM corrected_outputs
    UNION SELECT inference_id FROM feedback WHERE signal = 'accepted'
    UNION SELECT inference_id FROM review_items WHERE done_at IS NOT NULL
)
SELECT i.event_id, i.task,
       CASE WHEN n.inference_id IS NOT NULL THEN 0
            WHEN i.mean_logprob IS NOT NULL AND i.mean_logprob < ? THEN 1
            ELSE 2 END AS tier,
       i.mean_logprob, i.occurred_at
FROM inferences i
LEFT JOIN negative n ON n.inference_id = i.event_id
LEFT JOIN review_items r ON r.inference_id = i.event_id
WHERE i.origin = 'production'
  AND i.event_id NOT IN (SELECT inference_id FROM settled)
  AND (? IS NULL OR i.task = ?)
  AND (r.inference_id IS NULL
       OR (r.lease_expires_at <= ? AND NOT (r.outcome = 'skipped' AND r.reviewer = ?))
       OR (r.reviewer = ? AND r.outcome IS NULL))
"""
_ORDER = """
ORDER BY tier,
         CASE WHEN tier = 0 THEN epoch(occurred_at) * -1 END,
         CASE WHEN tier = 1 THEN mean_logprob END,
         hash(event_id)
"""


class LeaseError(Exception):
    """The item is not (or no longer) leased to this reviewer; the message says why."""


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def queue_summary(
    connection: duckdb.DuckDBPyConnection, *, task: str | None, low_confidence: float
) -> dict[str, Any]:
    """How many items wait in each tier (items leased to someone else are not counted)."""
    now = _now()
    rows = (
        connection.cursor()
        .execute(
            f"SELECT tier, count(*) FROM ({_PENDING}) GROUP BY tier",
            [low_confidence, task, task, now, "", ""],
        )
        .fetchall()
    )
    counts = {REASONS[tier]: n for tier, n in rows}
    by_reason = {reason: counts.get(reason, 0) for reason in REASONS.values()}
    return {"pending": sum(counts.values()), "by_reason": by_reason}


def lease_next(
    connection: duckdb.DuckDBPyConnection,
    *,
    reviewer: str,
    task: str | None,
    lease_s: float,
    low_confidence: float,
) -> dict[str, Any] | None:
    """The reviewer's current item, or the most needed free one, leased to them."""
    now = _now()
    cursor = connection.cursor()
    held = cursor.execute(
        "SELECT inference_id FROM review_items WHERE reviewer = ? AND done_at IS NULL "
        "AND outcome IS NULL AND lease_expires_at > ? AND (? IS NULL OR task = ?) "
        "ORDER BY leased_at LIMIT 1",
        [reviewer, now, task, task],
    ).fetchone()
    if held is not None:
        return item(connection, held[0], low_confidence=low_confidence)
    row = cursor.execute(
        f"SELECT event_id, task FROM ({_PENDING}) {_ORDER} LIMIT 1",
        [low_confidence, task, task, now, reviewer, reviewer],
    ).fetchone()
    if row is None:
        return None
    expires = now + timedelta(seconds=lease_s)
    cursor.execute(
        "INSERT OR REPLACE INTO review_items VALUES (?, ?, ?, ?, ?, NULL, NULL)",
        [row[0], row[1], reviewer, now, expires],
    )
    return item(connection, row[0], low_confidence=low_confidence)


def item(
    connection: duckdb.DuckDBPyConnection, inference_id: str, *, low_confidence: float
) -> dict[str, Any] | None:
    """What a reviewer sees: input, output, the adapter that produced it, its feedback."""
    cursor = connection.cursor()
    row = cursor.execute(
        "SELECT i.event_id, i.task, i.input, i.output, i.adapter_id, i.base_model, "
        "i.mean_logprob, i.occurred_at, r.reviewer, r.lease_expires_at, r.done_at, r.outcome "
        "FROM inferences i LEFT JOIN review_items r ON r.inference_id = i.event_id "
        "WHERE i.event_id = ?",
        [inference_id],
    ).fetchone()
    if row is None:
        return None
    feedback = cursor.execute(
        "SELECT signal, rating, edited_output, user_id, occurred_at FROM feedback "
        "WHERE inference_id = ? ORDER BY occurred_at",
        [inference_id],
    ).fetchall()
    negative = any(
        f[0] == "thumbs_down" or (f[0] == "rating" and (f[1] or 5) <= 2) for f in feedback
    )
    unsure = row[6] is not None and row[6] < low_confidence
    return {
        "inference_id": row[0],
        "task": row[1],
        "input": row[2],
        "output": row[3],
        "adapter_id": row[4],
        "base_model": row[5],
        "mean_logprob": row[6],
        "occurred_at": row[7].isoformat(),
        "reason": REASONS[0 if negative else 1 if unsure else 2],
        "leased_to": row[8],
        "lease_expires_at": row[9] and row[9].isoformat(),
        "done_at": row[10] and row[10].isoformat(),
        "outcome": row[11],
        "feedback": [
            {
                "signal": f[0],
                "rating": f[1],
                "edited_output": f[2],
                "user_id": f[3],
                "occurred_at": f[4].isoformat(),
            }
            for f in feedback
        ],
    }


def check_lease(
    connection: duckdb.DuckDBPyConnection, inference_id: str, reviewer: str
) -> dict[str, Any]:
    """The leased item's task and output; raises LeaseError unless ``reviewer`` holds it."""
    row = (
        connection.cursor()
        .execute(
            "SELECT r.reviewer, r.lease_expires_at, r.done_at, i.task, i.output "
            "FROM review_items r JOIN inferences i ON i.event_id = r.inference_id "
            "WHERE r.inference_id = ?",
            [inference_id],
        )
        .fetchone()
    )
    if row is None:
        raise LeaseError(f"item {inference_id} is not leased: lease it first (next item)")
    holder, expires, done, task, output = row
    if done is not None:  # reviewed already
        raise LeaseError(f"item {inference_id} was already reviewed by {holder}")
    if holder != reviewer:
        raise LeaseError(
            f"item {inference_id} is leased to another reviewer until {expires.isoformat()}Z"
        )
    if expires <= _now():
        raise LeaseError(
            f"your lease on {inference_id} expired at {expires.isoformat()}Z; lease it again"
        )
    return {"task": task, "output": output}


def finish(
    connection: duckdb.DuckDBPyConnection, inference_id: str, reviewer: str, outcome: str
) -> None:
    connection.cursor().execute(
        "UPDATE review_items SET done_at = ?, outcome = ? WHERE inference_id = ? AND reviewer = ?",
        [_now(), outcome, inference_id, reviewer],
    )


def release(connection: duckdb.DuckDBPyConnection, inference_id: str, reviewer: str) -> None:
    """Skip an item: it goes back to the queue for the other reviewers at once."""
    connection.cursor().execute(
        "UPDATE review_items SET lease_expires_at = ?, outcome = 'skipped' "
        "WHERE inference_id = ? AND reviewer = ? AND done_at IS NULL",
        [_now(), inference_id, reviewer],
    )
