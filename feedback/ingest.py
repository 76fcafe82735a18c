"""Pure ingest logic: raw Kafka records in, validated events and rejections out.

Agents in ``services`` feed records here and hand the result to the writer; nothing in
this module does I/O, so every rule is unit-testable.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from feedback.writer import Rejection
from schemas import EventEnvelope, Invalid, parse_event
from schemas.topics import TYPE_OF_TOPIC

log = logging.getLogger(__name__)


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


DEADLETTER_RAW_BYTES = 64 * 1024
"""Most bytes of a rejected payload carried on ``flywheel.deadletter`` (the table keeps more).
Escaped as JSON a byte can take six, so a message stays far below Kafka's default 1 MiB limit:
a dead-letter message that cannot be published would stop ingest for the sake of a bad event."""


def decode_records(records: Iterable[RawRecord]) -> DecodedBatch:
    """Validate each record against the event type its topic carries.

    Total: every record becomes an event or a rejection, whatever its bytes. An unexpected
    error while decoding one record (a bug, not bad input) rejects that record with the error
    named and is logged; it never stops the batch, whose offsets could then never commit."""
    batch = DecodedBatch()
    now = datetime.now(UTC)
    for record in records:
        try:
            result = _decode(record, now)
        except Exception as error:
            log.exception(
                "decoding %s[%d]@%d failed", record.topic, record.partition, record.offset
            )
            result = Rejection.of(
                rejection_id=_rejection_id(record),
                source=f"kafka:{record.topic}",
                reason=f"could not be decoded ({type(error).__name__}); report this as a bug",
                raw=record.value or b"",
                event_type=TYPE_OF_TOPIC.get(record.topic),
            )
        if isinstance(result, Rejection):
            batch.rejections.append(result)
        else:
            batch.events.append(result)
    return batch


def _decode(record: RawRecord, now: datetime) -> EventEnvelope | Rejection:
    expected = TYPE_OF_TOPIC.get(record.topic)
    source = f"kafka:{record.topic}"
    if record.value is None:
        reason = "empty record (null value); send the event as UTF-8 JSON"
        raw = b""
    elif expected is None:
        reason, raw = f"topic {record.topic} carries no Flywheel events", record.value
    else:
        result = parse_event(record.value, expected_type=expected, now=now)
        if not isinstance(result, Invalid):
            return result
        reason, raw = result.reason, record.value
    return Rejection.of(
        rejection_id=_rejection_id(record),
        source=source,
        reason=reason,
        raw=raw,
        event_type=expected,
    )


def _rejection_id(record: RawRecord) -> str:
    return f"{record.topic}:{record.partition}:{record.offset}"


def deadletter_message(rejection: Rejection) -> bytes:
    """The JSON value published on ``flywheel.deadletter`` for one rejection.

    ``raw`` is the payload as UTF-8 text, or base64 when it is not UTF-8, cut to
    ``DEADLETTER_RAW_BYTES``; ``raw_size`` is the size received and ``raw_truncated`` says
    whether ``raw`` is only its head."""
    size = rejection.raw_size if rejection.raw_size is not None else len(rejection.raw)
    head = rejection.raw[:DEADLETTER_RAW_BYTES]
    try:
        raw, encoding = _utf8_head(head, cut=len(head) < size), "utf-8"
    except UnicodeDecodeError:
        raw, encoding = base64.b64encode(head).decode("ascii"), "base64"
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
            "raw_size": size,
            "raw_truncated": len(head) < size,
            "rejected_at": datetime.now(UTC).isoformat(),
        }
    ).encode()


def _utf8_head(head: bytes, *, cut: bool) -> str:
    """Decode ``head``; when it was cut from a longer payload, a character split by the cut
    (its last 1-3 bytes) is dropped rather than turning the whole payload into base64."""
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as error:
        if cut and error.reason == "unexpected end of data" and error.start >= len(head) - 3:
            return head[: error.start].decode("utf-8")
        raise
