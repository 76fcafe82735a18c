"""Pure ingest logic: raw Kafka records in, validated events and rejections out.

Agents in ``services`` feed records here and hand the result to the writer; nothing in
this module does I/O, so every rule is unit-testable.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from feedback.writer import Rejection
from schemas import EventEnvelope, Invalid, parse_event
from schemas.topics import TYPE_OF_TOPIC


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One Kafka record as the ingest sees it."""

    topic: str
    partition: int
    offset: int
    value: bytes | None


@dataclass(slots=True)
class DecodedBatch:
    events: list[EventEnvelope] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)


def decode_records(records: Iterable[RawRecord]) -> DecodedBatch:
    """Validate each record against the event type its topic carries."""
    batch = DecodedBatch()
    now = datetime.now(UTC)
    for record in records:
        expected = TYPE_OF_TOPIC.get(record.topic)
        source = f"kafka:{record.topic}"
        rejection_id = f"{record.topic}:{record.partition}:{record.offset}"
        if record.value is None:
            reason = "empty record (null value); send the event as UTF-8 JSON"
            batch.rejections.append(
                Rejection.of(
                    rejection_id=rejection_id,
                    source=source,
                    reason=reason,
                    raw=b"",
                    event_type=expected,
                )
            )
            continue
        if expected is None:
            reason = f"topic {record.topic} carries no Flywheel events"
            batch.rejections.append(
                Rejection.of(
                    rejection_id=rejection_id, source=source, reason=reason, raw=record.value
                )
            )
            continue
        result = parse_event(record.value, expected_type=expected, now=now)
        if isinstance(result, Invalid):
            batch.rejections.append(
                Rejection.of(
                    rejection_id=rejection_id,
                    source=source,
                    reason=result.reason,
                    raw=record.value,
                    event_type=expected,
                )
            )
        else:
            batch.events.append(result)
    return batch


def deadletter_message(rejection: Rejection) -> bytes:
    """The JSON value published on ``flywheel.deadletter`` for one rejection."""
    try:
        raw, encoding = rejection.raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        raw, encoding = base64.b64encode(rejection.raw).decode("ascii"), "base64"
    return json.dumps(
        {
            "rejection_id": rejection.rejection_id,
            "source": rejection.source,
            "reason": rejection.reason,
            "event_type": rejection.event_type,
            "task": rejection.task,
            "event_id": rejection.event_id,
            "raw": raw,
            "raw_encoding": encoding,
            "rejected_at": datetime.now(UTC).isoformat(),
        }
    ).encode()
