"""Turn raw bytes from any producer into a validated event, or a reason a person can act on."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import TypeAdapter, ValidationError

from schemas.events import MAX_TEXT_CHARS, Event, EventEnvelope

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
        parts.append(f"{location}: {message}")
    more = error.error_count() - len(parts)
    if more > 0:
        parts.append(f"and {more} more problem(s)")
    return "; ".join(parts)


def parse_event(raw: bytes | str, *, expected_type: str | None = None) -> EventEnvelope | Invalid:
    """Validate one JSON-encoded event; ``expected_type`` is the type its topic carries."""
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
    return event


def parse_object(obj: object, *, expected_type: str | None = None) -> EventEnvelope | Invalid:
    """Validate one already-decoded event (for example an item of an HTTP batch)."""
    try:
        event = _EVENT_ADAPTER.validate_python(obj)
    except ValidationError as error:
        return Invalid(explain(error))
    if expected_type is not None and event.type != expected_type:
        return Invalid(f"type: expected a '{expected_type}' event, got '{event.type}'")
    return event


def _topic_suffix(event_type: str) -> str:
    return "corrections" if event_type == "correction" else event_type
