"""Turn raw bytes from any producer into a validated event, or a reason a person can act on."""

from __future__ import annotations

import json
from array import array
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import accumulate

from pydantic import TypeAdapter, ValidationError

from schemas.events import MAX_CLOCK_SKEW, MAX_TEXT_CHARS, NO_NUL_PATTERN, Event, EventEnvelope

MAX_EVENT_BYTES = 4 * MAX_TEXT_CHARS + 16_384
"""Largest serialised event accepted: input, output and a correction at their limits, plus room."""
MAX_JSON_DEPTH = 32
"""Deepest nesting of arrays and objects decoded. Events are at most three levels deep (a batch
adds two); the bound keeps every decoder and encoder after it far from Python's recursion limit."""
MAX_REASON_CHARS = 2_000
"""Longest reason kept: field names in a reason come from the payload and may be huge."""

_EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


@dataclass(frozen=True, slots=True)
class Invalid:
    """A payload that failed validation, and why."""

    reason: str


def explain(error: ValidationError) -> str:
    """Summarise a pydantic error as 'field: problem; field: problem' for people and logs."""
    parts = []
    for item in error.errors(include_url=False, include_input=False)[:5]:
        location = ".".join(printable(str(p))[:80] for p in item["loc"]) or "event"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "string_pattern_mismatch" and item.get("ctx", {}).get("pattern") == (
            NO_NUL_PATTERN
        ):
            message = "must not contain NUL bytes (\\x00)"
        elif item["type"] == "string_unicode":
            message = "holds a lone surrogate escape (\\ud800-\\udfff), which is not text"
        elif item["type"] == "timezone_aware":
            message = "must carry a time zone, for example 2026-01-31T12:00:00Z"
        parts.append(f"{location}: {message}")
    more = error.error_count() - len(parts)
    if more > 0:
        parts.append(f"and {more} more problem(s)")
    return printable("; ".join(parts))[:MAX_REASON_CHARS]


def printable(text: str) -> str:
    """``text`` with lone surrogates escaped (\\ud800): they cannot be encoded as UTF-8, so a
    reason or an id salvaged from a payload that carries one could not be stored or sent."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def decode_json(raw: bytes, *, max_bytes: int) -> object | Invalid:
    """Decode strict UTF-8 JSON of at most ``max_bytes`` bytes and ``MAX_JSON_DEPTH`` levels.

    Total: whatever ``raw`` holds, the answer is a value or an ``Invalid`` with the reason, never
    an exception. Size and depth are checked before decoding, so no payload can exhaust the
    stack (a recursive decoder dies on a few thousand brackets) or the memory. Lone surrogate
    escapes (\\ud800) decode, so the event that carries one is refused by field, not as a whole.
    """
    if len(raw) > max_bytes:
        return Invalid(f"{len(raw)} bytes; the limit is {max_bytes}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return Invalid(f"not UTF-8 ({error.reason} at byte {error.start}); send UTF-8 JSON")
    if _deeper_than(raw, MAX_JSON_DEPTH):
        return Invalid(f"JSON nested deeper than {MAX_JSON_DEPTH} levels; events are flat objects")
    try:
        return json.loads(text)
    except ValueError as error:
        return Invalid(f"not valid JSON: {error}")


_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_DEPTH_STEP = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")


def _deeper_than(raw: bytes, limit: int) -> bool:
    """Whether the brackets of UTF-8 JSON ``raw`` nest deeper than ``limit``, strings aside.

    Linear and in C: escaped backslashes and quotes go first, then every other quote-delimited
    run is a string; what is left becomes +1/-1 steps whose running sum is the depth."""
    unescaped = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside_strings = b"".join(unescaped.split(b'"')[::2])
    steps = array("b", outside_strings.translate(_DEPTH_STEP, _NOT_BRACKET))
    return next(filter(limit.__lt__, accumulate(steps)), None) is not None


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
        if any(item["type"] == "json_invalid" for item in error.errors(include_url=False)):
            # The fast parser refuses some JSON that is valid (lone surrogate escapes) with a
            # misleading reason: the total decoder says what is wrong, by field where it can.
            return _parse_slowly(raw, expected_type=expected_type, now=now)
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


def _parse_slowly(
    raw: bytes | str, *, expected_type: str | None, now: datetime | None
) -> EventEnvelope | Invalid:
    encoded = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    decoded = decode_json(encoded, max_bytes=MAX_EVENT_BYTES)
    if isinstance(decoded, Invalid):
        return Invalid(f"event: {decoded.reason}")
    return parse_object(decoded, expected_type=expected_type, now=now)


def _clock_checked(event: EventEnvelope, now: datetime | None) -> EventEnvelope | Invalid:
    """A time far in the future is a producer's clock bug; it would corrupt every window."""
    if event.occurred_at > (now or datetime.now(UTC)) + MAX_CLOCK_SKEW:
        return Invalid(
            "occurred_at: is more than an hour in the future; check the producer's clock"
        )
    return event


def _topic_suffix(event_type: str) -> str:
    return "corrections" if event_type == "correction" else event_type
