"""The event contract: what production apps, reviewers and importers send to Flywheel.

Every event shares one envelope (``event_id`` is the idempotency key, ``schema_version``,
``occurred_at`` in UTC, and ``type``, which names the event kind). Validation is strict and
bounded: unknown fields are refused, strings have maximum sizes, NUL bytes are refused and
timestamps must be plausible, so nothing a producer sends can bloat or corrupt the store.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

SCHEMA_VERSION = 1

MAX_TEXT_CHARS = 32_768
"""Largest input, output or correction accepted, in characters (about 8k tokens)."""
MAX_METADATA_KEYS = 32
"""Most metadata keys accepted (values are scalars, strings up to 1024 characters)."""
MAX_CLOCK_SKEW = timedelta(hours=1)
"""How far in the future an ``occurred_at`` may be before it is treated as a clock bug."""
EARLIEST_OCCURRED_AT = datetime(2000, 1, 1, tzinfo=UTC)

_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"


NO_NUL_PATTERN = r"^[^\x00]*$"
"""Strings never carry NUL bytes (they break C tooling and hide data). Checked in Rust, fast."""


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
    str, StringConstraints(min_length=1, max_length=MAX_TEXT_CHARS, pattern=NO_NUL_PATTERN)
]
OptionalText = Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS, pattern=NO_NUL_PATTERN)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=NO_NUL_PATTERN)]
MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=NO_NUL_PATTERN)]
MetadataValue = (
    Annotated[str, StringConstraints(max_length=1024, pattern=NO_NUL_PATTERN)]
    | int
    | float
    | bool
    | None
)


class EventEnvelope(BaseModel):
    """Fields every event carries."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)

    event_id: EventId
    schema_version: Literal[1] = SCHEMA_VERSION
    occurred_at: AwareDatetime = Field(
        ge=EARLIEST_OCCURRED_AT,
        description="When it happened, ISO 8601 with a time zone; stored in UTC. At most an "
        "hour in the future (checked where events enter: schemas.validation).",
    )


class InferenceEvent(EventEnvelope):
    """A model output produced in production (or an imported example a business already has)."""

    type: Literal["inference"] = "inference"
    task: TaskName
    input: Text
    output: OptionalText
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
    metadata: dict[MetadataKey, MetadataValue] = Field(
        default_factory=dict,
        max_length=MAX_METADATA_KEYS,
        description="Flat key/value pairs: at most 32 keys, string values up to 1024 chars.",
    )


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
    note: Annotated[str, StringConstraints(max_length=4096, pattern=NO_NUL_PATTERN)] | None = None


Event = Annotated[InferenceEvent | FeedbackEvent | CorrectionEvent, Field(discriminator="type")]
EventType = Literal["inference", "feedback", "correction"]
EVENT_MODELS: dict[str, type[EventEnvelope]] = {
    "inference": InferenceEvent,
    "feedback": FeedbackEvent,
    "correction": CorrectionEvent,
}
