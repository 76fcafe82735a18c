"""The event contract: what production apps, reviewers and importers send to Flywheel.

Every event shares one envelope (``event_id`` is the idempotency key, ``schema_version``,
``occurred_at`` in UTC, and ``type``, which names the event kind). Validation is strict and
bounded: unknown fields are refused, strings have maximum sizes, NUL bytes are refused and
timestamps must be plausible, so nothing a producer sends can bloat or corrupt the store.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

SCHEMA_VERSION = 1

MAX_TEXT_CHARS = 32_768
"""Largest input, output or correction accepted, in characters (about 8k tokens)."""
MAX_METADATA_BYTES = 8_192
"""Largest metadata object accepted, measured as compact JSON."""
MAX_CLOCK_SKEW = timedelta(hours=1)
"""How far in the future an ``occurred_at`` may be before it is treated as a clock bug."""
EARLIEST_OCCURRED_AT = datetime(2000, 1, 1, tzinfo=UTC)

_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL bytes (\\x00)")
    return value


TaskName = Annotated[
    str,
    StringConstraints(pattern=_NAME_PATTERN),
    Field(description="Task name: lowercase letters, digits, '_' or '-', at most 64 characters."),
]
EventId = Annotated[
    str,
    StringConstraints(pattern=_ID_PATTERN),
    Field(description="Unique id: letters, digits, '.', '_', ':' or '-', at most 128 characters."),
]
Text = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_TEXT_CHARS),
    AfterValidator(_no_nul),
]
ShortText = Annotated[
    str,
    StringConstraints(min_length=1, max_length=256),
    AfterValidator(_no_nul),
]
MetadataValue = str | int | float | bool | None


class EventEnvelope(BaseModel):
    """Fields every event carries."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)

    event_id: EventId
    schema_version: Literal[1] = SCHEMA_VERSION
    occurred_at: datetime = Field(
        description="When it happened, ISO 8601 with a time zone; stored in UTC."
    )

    @field_validator("occurred_at")
    @classmethod
    def _utc_and_plausible(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("must carry a time zone, for example 2026-01-31T12:00:00Z")
        value = value.astimezone(UTC)
        if value < EARLIEST_OCCURRED_AT:
            raise ValueError("is before 2000-01-01; check the producer's clock")
        if value > datetime.now(UTC) + MAX_CLOCK_SKEW:
            raise ValueError("is more than an hour in the future; check the producer's clock")
        return value


class InferenceEvent(EventEnvelope):
    """A model output produced in production (or an imported example a business already has)."""

    type: Literal["inference"] = "inference"
    task: TaskName
    input: Text
    output: Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS), AfterValidator(_no_nul)]
    base_model: ShortText
    adapter_id: EventId | None = Field(
        default=None, description="Adapter that produced the output; null for the base model."
    )
    latency_ms: float | None = Field(default=None, ge=0, le=3_600_000)
    mean_logprob: float | None = Field(
        default=None,
        le=0,
        ge=-100,
        description="Mean token log-probability of the output: the model's confidence.",
    )
    origin: Literal["production", "import"] = Field(
        default="production",
        description="'import' marks an example a business already had: ground truth as is.",
    )
    metadata: dict[Annotated[str, StringConstraints(max_length=64)], MetadataValue] = Field(
        default_factory=dict
    )

    @field_validator("metadata")
    @classmethod
    def _bounded_metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
        if size > MAX_METADATA_BYTES:
            raise ValueError(f"is {size} bytes as JSON; the limit is {MAX_METADATA_BYTES}")
        for key, item in value.items():
            if "\x00" in key or (isinstance(item, str) and "\x00" in item):
                raise ValueError("must not contain NUL bytes (\\x00)")
        return value


FeedbackSignal = Literal["thumbs_up", "thumbs_down", "rating", "accepted", "edited"]


class FeedbackEvent(EventEnvelope):
    """What a user of the production app said about one output."""

    type: Literal["feedback"] = "feedback"
    task: TaskName
    inference_id: EventId
    signal: FeedbackSignal
    rating: int | None = Field(default=None, ge=1, le=5, description="1-5; only with 'rating'.")
    edited_output: Text | None = Field(
        default=None, description="The output as the user edited it; only with 'edited'."
    )
    user_id: ShortText | None = None

    @model_validator(mode="after")
    def _signal_matches_payload(self) -> FeedbackEvent:
        if (self.signal == "rating") != (self.rating is not None):
            raise ValueError("'rating' must be set exactly when signal is 'rating'")
        if (self.signal == "edited") != (self.edited_output is not None):
            raise ValueError("'edited_output' must be set exactly when signal is 'edited'")
        return self


class CorrectionEvent(EventEnvelope):
    """A reviewer's corrected output for one inference: ground truth."""

    type: Literal["correction"] = "correction"
    task: TaskName
    inference_id: EventId
    corrected_output: Text
    reviewer: ShortText
    note: Annotated[str, StringConstraints(max_length=4096), AfterValidator(_no_nul)] | None = None


Event = Annotated[InferenceEvent | FeedbackEvent | CorrectionEvent, Field(discriminator="type")]
EventType = Literal["inference", "feedback", "correction"]
EVENT_MODELS: dict[str, type[EventEnvelope]] = {
    "inference": InferenceEvent,
    "feedback": FeedbackEvent,
    "correction": CorrectionEvent,
}
