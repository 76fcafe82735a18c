"""Turn raw bytes from any producer into a validated event, or a reason a person can act on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import TypeAdapter, ValidationError

from schemas.events import MAX_CLOCK_SKEW, MAX_TEXT_CHARS, NO_NUL_PATTERN, Event, EventEnvelope

MAX_EVENT_BYTES = 4 * MAX_TEXT_CHARS + 16_384
"""Largest serialised event accepted: input, output and a correction at their limits, plus room."""

_EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


@dataclass(frozen=True, slots=True)
class Invalid:
    """A payload that failed validation, and why."""

    reason: str


def explain(error: ValidationError) -> str:
    """Summarise a pydantic error as 'field: problem; field: problem' for people and logs."""
    parts = []
    for item in error.errors(include_url=False, include_input=False)[:5]:
        location = ".".join(str(p) for p in item["loc"]) or "event"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "string_pattern_mismatch" and item.get("ctx", {}).get("pattern") == (
            NO_NUL_PATTERN
        ):
            message = "must not contain NUL bytes (\\x00)"
        elif item["type"] == "timezone_aware":
            message = "must carry a time zone, for example 2026-01-31T12:00:00Z"
        parts.append(f"{location}: {message}")
    more = error.error_count() - len(parts)
    if more > 0:
        parts.append(f"and {more} more problem(s)")
    return "; ".join(parts)


def parse_event(
    raw: bytes | str, *, expected_type: str | None = None, now: datetime | None = None
) -> EventEnvelope | Invalid:
    """Validate one JSON-encoded event; ``expected_type`` is the type its topic carries.
    Pass ``now`` when validating a batch: reading the clock per event is measurable."""
    size = len(raw)
    if size > MAX_EVENT_BYTES:
        return Invalid(f"event is {size} bytes; the limit is {MAX_EVENT_BYTES}")
    try:
        event = _EVENT_ADAPTER.validate_json(raw)
    except ValidationError as error:
        return Invalid(explain(error))
    if expected_type is not None and event.type != expected_type:
        return Invalid(
            f"type: a '{event.type}' event was sent to the '{expected_type}' topic; "
            f"send it to flywheel.{_topic_suffix(event.type)}"
        )
    return _clock_checked(event, now)


def parse_object(
    obj: object, *, expected_type: str | None = None, now: datetime | None = None
) -> EventEnvelope | Invalid:
    """Validate one already-decoded event (for example an item of an HTTP batch)."""
    try:
        event = _EVENT_ADAPTER.validate_python(obj)
    except ValidationError as error:
        return Invalid(explain(error))
    if expected_type is not None and event.type != expected_type:
        return Invalid(f"type: expected a '{expected_type}' event, got '{event.type}'")
    return _clock_checked(event, now)


def _clock_checked(event: EventEnvelope, now: datetime | None) -> EventEnvelope | Invalid:
    """A time far in the future is a producer's clock bug; it would corrupt every window."""
    if event.occurred_at > (now or datetime.now(UTC)) + MAX_CLOCK_SKEW:
        return Invalid(
            "occurred_at: is more than an hour in the future; check the producer's clock"
        )
    return event


def _topic_suffix(event_type: str) -> str:
    return "corrections" if event_type == "correction" else event_type
