"""The event contract (pydantic v2 models) and its JSON Schema export."""

from schemas.events import (
    EVENT_MODELS,
    SCHEMA_VERSION,
    CorrectionEvent,
    Event,
    EventEnvelope,
    EventType,
    FeedbackEvent,
    InferenceEvent,
)
from schemas.validation import MAX_EVENT_BYTES, Invalid, parse_event, parse_object

__all__ = [
    "EVENT_MODELS",
    "MAX_EVENT_BYTES",
    "SCHEMA_VERSION",
    "CorrectionEvent",
    "Event",
    "EventEnvelope",
    "EventType",
    "FeedbackEvent",
    "InferenceEvent",
    "Invalid",
    "parse_event",
    "parse_object",
]
