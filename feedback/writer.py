"""Bulk, idempotent writes of validated events and rejections into the store.

Events are deduplicated by ``event_id`` inside a batch and against the table (``INSERT OR
IGNORE`` on the primary key), so replaying a batch after a crash stores nothing twice. Rows go
in as one Arrow table per event type: DuckDB's bulk path, never row-by-row inserts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb
import pyarrow as pa
from pydantic_core import to_json

from feedback.erased_ids import erased_among, without_erased
from schemas import MAX_EVENT_BYTES, CorrectionEvent, EventEnvelope, FeedbackEvent, InferenceEvent
from schemas.validation import decode_json, printable

_COLUMNS: dict[str, tuple[str, ...]] = {
    "inferences": (
        "event_id",
        "task",
        "input",
        "output",
        "base_model",
        "adapter_id",
        "latency_ms",
        "mean_logprob",
        "origin",
        "metadata",
        "occurred_at",
        "ingested_at",
    ),
    "feedback": (
        "event_id",
        "task",
        "inference_id",
        "signal",
        "rating",
        "edited_output",
        "user_id",
        "occurred_at",
        "ingested_at",
    ),
    "corrections": (
        "event_id",
        "task",
        "inference_id",
        "corrected_output",
        "reviewer",
        "note",
        "occurred_at",
        "ingested_at",
    ),
    "rejected_events": (
        "rejection_id",
        "source",
        "event_type",
        "task",
        "event_id",
        "reason",
        "raw",
        "received_at",
    ),
}
TABLE_OF_TYPE = {"inference": "inferences", "feedback": "feedback", "correction": "corrections"}


MAX_REJECTED_RAW_BYTES = MAX_EVENT_BYTES
"""Most bytes of a rejected payload kept in the ``rejected_events`` table (the dead-letter topic
carries less: ``feedback.ingest.DEADLETTER_RAW_BYTES``). A longer payload was refused for its
size and its head shows what it was; keeping all of it would let one producer bloat the store."""
_SALVAGE_MAX_BYTES = 16 * 1024 * 1024
"""Payloads up to this size are read for their task and id (more than any transport delivers)."""


@dataclass(frozen=True, slots=True)
class Rejection:
    """An event that failed validation: its raw bytes and a reason a person can act on."""

    rejection_id: str
    """Idempotency key: topic:partition:offset for Kafka, a request-scoped id for HTTP."""
    source: str
    reason: str
    raw: bytes
    """The payload as received, cut to ``MAX_REJECTED_RAW_BYTES``."""
    event_type: str | None = None
    task: str | None = None
    event_id: str | None = None
    raw_size: int | None = None
    """Size of the payload as received; larger than ``len(raw)`` when it was cut."""

    @classmethod
    def of(
        cls,
        *,
        rejection_id: str,
        source: str,
        reason: str,
        raw: bytes,
        event_type: str | None = None,
    ) -> Rejection:
        """Build a rejection, salvaging task and id from the payload where readable.
        ``event_type`` is the type its channel carries (a topic's); else the payload's claim.

        Total, whatever the payload: salvage uses the bounded decoder, and a payload it cannot
        read simply yields no task or id."""
        task = event_id = None
        obj = decode_json(raw, max_bytes=_SALVAGE_MAX_BYTES)
        if isinstance(obj, dict):
            task, event_id = _short(obj.get("task")), _short(obj.get("event_id"))
            claimed = obj.get("type")
            if event_type is None and isinstance(claimed, str) and claimed in TABLE_OF_TYPE:
                event_type = claimed
        return cls(
            rejection_id,
            source,
            printable(reason),
            raw[:MAX_REJECTED_RAW_BYTES],
            event_type,
            task,
            event_id,
            len(raw),
        )


@dataclass(slots=True)
class WriteResult:
    """What one batch changed: rows stored per event type, duplicates ignored, rejections."""

    stored: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    rejected: int = 0
    erased: int = 0
    """Events (and rejections) refused because ``flywheel forget`` erased their id."""


def dedupe(events: Iterable[EventEnvelope]) -> list[EventEnvelope]:
    """Keep the first event of each ``event_id``: a producer's retry is the same event."""
    seen: dict[str, EventEnvelope] = {}
    for event in events:
        seen.setdefault(event.event_id, event)
    return list(seen.values())


def write_batch(
    connection: duckdb.DuckDBPyConnection,
    events: Sequence[EventEnvelope],
    rejections: Sequence[Rejection] = (),
) -> WriteResult:
    """Store a batch in one transaction; returns what was new. Events erased before (a
    Kafka replay, a spool re-sent) are refused, not stored."""
    now = datetime.now(UTC).replace(tzinfo=None)
    unique = dedupe(events)
    result = WriteResult(duplicates=len(events) - len(unique))
    unique, result.erased = without_erased(connection, unique)
    erased_rejections = erased_among(connection, (r.event_id for r in rejections if r.event_id))
    if erased_rejections:
        result.erased += sum(r.event_id in erased_rejections for r in rejections)
        rejections = [r for r in rejections if r.event_id not in erased_rejections]
    by_table: dict[str, list[tuple]] = {}
    for event in unique:
        by_table.setdefault(TABLE_OF_TYPE[event.type], []).append(_row(event, now))
    reject_rows = [
        (r.rejection_id, r.source, r.event_type, r.task, r.event_id, r.reason, r.raw, now)
        for r in rejections
    ]
    connection.execute("BEGIN TRANSACTION")
    try:
        for table, rows in by_table.items():
            inserted = _insert_or_ignore(connection, table, rows)
            event_type = next(k for k, v in TABLE_OF_TYPE.items() if v == table)
            result.stored[event_type] = inserted
            result.duplicates += len(rows) - inserted
        if reject_rows:
            result.rejected = _insert_or_ignore(connection, "rejected_events", reject_rows)
        connection.execute("COMMIT")
    except Exception:
        connection.execute("ROLLBACK")
        raise
    return result


def _insert_or_ignore(connection: duckdb.DuckDBPyConnection, table: str, rows: list[tuple]) -> int:
    columns = _COLUMNS[table]
    arrow = pa.Table.from_arrays(
        [pa.array([row[i] for row in rows]) for i in range(len(columns))], names=list(columns)
    )
    connection.register("_flywheel_batch", arrow)
    try:
        # The statement answers with the number of rows it really inserted.
        row = connection.execute(
            f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) "
            f"SELECT {', '.join(columns)} FROM _flywheel_batch"
        ).fetchone()
        return int(row[0]) if row else 0
    finally:
        connection.unregister("_flywheel_batch")


def _row(event: EventEnvelope, now: datetime) -> tuple:
    occurred = event.occurred_at.astimezone(UTC).replace(tzinfo=None)
    if isinstance(event, InferenceEvent):
        metadata = to_json(event.metadata).decode() if event.metadata else None
        return (
            event.event_id,
            event.task,
            event.input,
            event.output,
            event.base_model,
            event.adapter_id,
            event.latency_ms,
            event.mean_logprob,
            event.origin,
            metadata,
            occurred,
            now,
        )
    if isinstance(event, FeedbackEvent):
        return (
            event.event_id,
            event.task,
            event.inference_id,
            event.signal,
            event.rating,
            event.edited_output,
            event.user_id,
            occurred,
            now,
        )
    if isinstance(event, CorrectionEvent):
        return (
            event.event_id,
            event.task,
            event.inference_id,
            event.corrected_output,
            event.reviewer,
            event.note,
            occurred,
            now,
        )
    raise TypeError(f"not an event: {type(event).__name__}")


def _short(value: object) -> str | None:
    return printable(value[:128]) if isinstance(value, str) else None
