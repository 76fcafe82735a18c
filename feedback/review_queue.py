"""The reviewer queue: which production answer a person should look at next.

Order of need: answers that got negative feedback (thumbs down, a rating of 1 or 2), then
answers the model was unsure of (mean token log-probability below a threshold, least sure
first), then a random calibration sample of the rest (a stable hash order, so two reviewers
never fight over the same "random" item). Answers that already are ground truth (corrected,
edited or accepted) never enter the queue.

An item is leased to one reviewer's token (its ``holder`` id; two tokens never share a lease,
whatever their names) until the lease expires; only that token can decide it, and a verdict
is claimed by one conditional UPDATE, so however many requests race, one decides. Functions
take the store connection and run on its single thread, so two reviewers asking at the same
moment get different items.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb

REASONS = {0: "negative feedback", 1: "low model confidence", 2: "calibration sample"}

# Pending items with their tier. Placeholders: low_confidence, task, task, now, holder,
# holder. A lease that expired frees its item; an item a reviewer skipped goes to others.
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
       OR (r.lease_expires_at <= ? AND NOT (coalesce(r.outcome, '') = 'skipped' AND r.holder = ?))
       OR (r.holder = ? AND r.outcome IS NULL))
"""
_ORDER = """
ORDER BY tier,
         CASE WHEN tier = 0 THEN epoch(occurred_at) * -1 END,
         CASE WHEN tier = 1 THEN mean_logprob END,
         hash(event_id)
"""


VERDICTS = ("approved", "corrected")
_NO_HOLDER = "(nobody)"  # never a token id, nor the '' of leases taken before migration 4


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
            [low_confidence, task, task, now, _NO_HOLDER, _NO_HOLDER],
        )
        .fetchall()
    )
    counts = {REASONS[tier]: n for tier, n in rows}
    by_reason = {reason: counts.get(reason, 0) for reason in REASONS.values()}
    return {"pending": sum(counts.values()), "by_reason": by_reason}


def lease_next(
    connection: duckdb.DuckDBPyConnection,
    *,
    holder: str,
    reviewer: str,
    task: str | None,
    lease_s: float,
    low_confidence: float,
) -> dict[str, Any] | None:
    """The token's current item, or the most needed free one, leased to ``holder`` (a token
    id; ``reviewer`` is the name shown to others and written into the verdict)."""
    now = _now()
    cursor = connection.cursor()
    held = cursor.execute(
        "SELECT inference_id FROM review_items WHERE holder = ? AND done_at IS NULL "
        "AND outcome IS NULL AND lease_expires_at > ? AND (? IS NULL OR task = ?) "
        "ORDER BY leased_at LIMIT 1",
        [holder, now, task, task],
    ).fetchone()
    if held is not None:
        return item(connection, held[0], low_confidence=low_confidence)
    row = cursor.execute(
        f"SELECT event_id, task FROM ({_PENDING}) {_ORDER} LIMIT 1",
        [low_confidence, task, task, now, holder, holder],
    ).fetchone()
    if row is None:
        return None
    expires = now + timedelta(seconds=lease_s)
    cursor.execute(
        "INSERT OR REPLACE INTO review_items (inference_id, task, reviewer, leased_at, "
        "lease_expires_at, done_at, outcome, holder) VALUES (?, ?, ?, ?, ?, NULL, NULL, ?)",
        [row[0], row[1], reviewer, now, expires, holder],
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
    connection: duckdb.DuckDBPyConnection, inference_id: str, holder: str
) -> dict[str, Any]:
    """The leased item's task and output; raises LeaseError unless ``holder`` holds it and no
    verdict on it is decided or being recorded."""
    row = (
        connection.cursor()
        .execute(
            "SELECT r.reviewer, r.holder, r.lease_expires_at, r.done_at, r.outcome, i.task, "
            "i.output FROM review_items r JOIN inferences i ON i.event_id = r.inference_id "
            "WHERE r.inference_id = ?",
            [inference_id],
        )
        .fetchone()
    )
    if row is None:
        raise LeaseError(f"item {inference_id} is not leased: lease it first (next item)")
    reviewer, lease_holder, expires, done, outcome, task, output = row
    if done is not None:
        raise LeaseError(f"item {inference_id} was already reviewed by {reviewer}")
    if lease_holder != holder:
        raise LeaseError(
            f"item {inference_id} is leased to another reviewer until {expires.isoformat()}Z"
        )
    if outcome in VERDICTS:
        raise LeaseError(
            f"item {inference_id} already has a verdict ({outcome}) being recorded; "
            "send one verdict per item"
        )
    if expires <= _now():
        raise LeaseError(
            f"your lease on {inference_id} expired at {expires.isoformat()}Z; lease it again"
        )
    return {"task": task, "output": output}


def claim_verdict(
    connection: duckdb.DuckDBPyConnection, inference_id: str, holder: str, outcome: str
) -> None:
    """Decide the item for ``holder`` once: one conditional UPDATE on the store thread, so
    of several verdicts sent at the same moment exactly one wins; the others get LeaseError.
    The claim is not yet done: ``finish`` completes it once the correction is published and
    ``unclaim`` gives it back if publishing failed (a claim whose lease runs out while the
    process is down frees the item, like any expired lease)."""
    if outcome not in VERDICTS:
        raise ValueError(f"outcome must be one of {VERDICTS}, not {outcome!r}")
    won = (
        connection.cursor()
        .execute(
            "UPDATE review_items SET outcome = ? WHERE inference_id = ? AND holder = ? "
            "AND done_at IS NULL AND outcome IS NULL AND lease_expires_at > ? "
            "RETURNING inference_id",
            [outcome, inference_id, holder, _now()],
        )
        .fetchall()
    )
    if not won:
        check_lease(connection, inference_id, holder)  # raises with the reason
        raise LeaseError(f"item {inference_id} changed while deciding it; lease it again")


def finish(connection: duckdb.DuckDBPyConnection, inference_id: str, holder: str) -> None:
    """The claimed verdict is published: the item is reviewed and leaves the queue."""
    connection.cursor().execute(
        "UPDATE review_items SET done_at = ? WHERE inference_id = ? AND holder = ? "
        "AND done_at IS NULL",
        [_now(), inference_id, holder],
    )


def unclaim(connection: duckdb.DuckDBPyConnection, inference_id: str, holder: str) -> None:
    """Publishing the verdict failed: the lease holds and its holder can decide again."""
    connection.cursor().execute(
        "UPDATE review_items SET outcome = NULL WHERE inference_id = ? AND holder = ? "
        "AND done_at IS NULL",
        [inference_id, holder],
    )


def release(connection: duckdb.DuckDBPyConnection, inference_id: str, holder: str) -> None:
    """Skip an item: it goes back to the queue for the other reviewers at once."""
    connection.cursor().execute(
        "UPDATE review_items SET lease_expires_at = ?, outcome = 'skipped' "
        "WHERE inference_id = ? AND holder = ? AND done_at IS NULL AND outcome IS NULL",
        [_now(), inference_id, holder],
    )
