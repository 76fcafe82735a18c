"""The event contract: what production apps, reviewers and importers send to Flywheel.

Every event shares one envelope (``event_id`` is the idempotency key, ``schema_version``,
``occurred_at`` in UTC, and ``type``, which names the event kind). Validation is strict and
bounded: unknown fields are refused, strings have maximum sizes, NUL bytes are refused and
timestamps must be plausible, so nothing a producer sends can bloat or corrupt the store.

The contract is strict JSON, and the models agree with their exported JSON Schemas both ways:
a string field takes only a string and a number field only a finite number (never "12", a
boolean, NaN or Infinity), ``occurred_at`` only an ISO 8601 string, and ``type`` is required
(it is what tells the three kinds apart; the Python constructors fill it in).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    field_validator,
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
    Strict(),
    StringConstraints(pattern=_NAME_PATTERN),
    Field(description="Task name: lowercase letters, digits, '_' or '-', at most 64 characters."),
]
EventId = Annotated[
    str,
    Strict(),
    StringConstraints(pattern=_ID_PATTERN),
    Field(description="Unique id: letters, digits, '.', '_', ':' or '-', at most 128 characters."),
]
Text = Annotated[
    str,
    Strict(),
    StringConstraints(min_length=1, max_length=MAX_TEXT_CHARS, pattern=NO_NUL_PATTERN),
]
OptionalText = Annotated[
    str, Strict(), StringConstraints(max_length=MAX_TEXT_CHARS, pattern=NO_NUL_PATTERN)
]
ShortText = Annotated[
    str, Strict(), StringConstraints(min_length=1, max_length=256, pattern=NO_NUL_PATTERN)
]
MetadataKey = Annotated[
    str, Strict(), StringConstraints(min_length=1, max_length=64, pattern=NO_NUL_PATTERN)
]
Number = Annotated[float, Strict()]
"""A finite JSON number: an integer or a float, never a string or a boolean (and, as every
float of the contract, never NaN or Infinity: see ``allow_inf_nan`` on the envelope)."""
MetadataValue = (
    Annotated[str, Strict(), StringConstraints(max_length=1024, pattern=NO_NUL_PATTERN)]
    | Annotated[int, Strict()]
    | Number
    | Annotated[bool, Strict()]
    | None
)


def _type_is_required(schema: dict[str, Any]) -> None:
    """Publish ``type`` as required: every decoder needs it to tell the kinds apart, and a
    schema that called it optional let producers send events the service had to reject."""
    if "type" in schema.get("properties", {}):
        schema["required"] = ["type", *schema.get("required", [])]


class EventEnvelope(BaseModel):
    """Fields every event carries."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        str_strip_whitespace=False,
        allow_inf_nan=False,  # JSON has no NaN or Infinity; 1e400 would decode as one
        json_schema_extra=_type_is_required,
    )

    event_id: EventId
    schema_version: Literal[1] = SCHEMA_VERSION
    occurred_at: AwareDatetime = Field(
        ge=EARLIEST_OCCURRED_AT,
        description="When it happened, ISO 8601 with a time zone; stored in UTC. At most an "
        "hour in the future (checked where events enter: schemas.validation).",
    )

    @field_validator("occurred_at", mode="before")
    @classmethod
    def _not_a_number(cls, value: object) -> object:
        """A number would be read as a Unix epoch in seconds or milliseconds, a guess the
        schema (an ISO 8601 string) never promised; refuse it rather than guess."""
        if isinstance(value, int | float):
            raise ValueError("must be an ISO 8601 string with a time zone, not a number")
        return value


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
    latency_ms: Number | None = Field(default=None, ge=0, le=3_600_000)
    mean_logprob: Number | None = Field(
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
_PAYLOAD_OF_SIGNAL = {"rating": "rating", "edited": "edited_output"}
"""The signals that carry a payload, and its field: set exactly with that signal."""


def _feedback_schema(schema: dict[str, Any]) -> None:
    """The JSON Schema says what ``_signal_matches_payload`` checks, so a producer that
    validates against it cannot send a rating without a value (or a value without one)."""
    _type_is_required(schema)
    schema["allOf"] = [
        {
            "if": {"properties": {"signal": {"const": signal}}},
            "then": {"required": [field], "properties": {field: {"not": {"type": "null"}}}},
            "else": {"properties": {field: {"type": "null"}}},
        }
        for signal, field in _PAYLOAD_OF_SIGNAL.items()
    ]


class FeedbackEvent(EventEnvelope):
    """What a user of the production app said about one output."""

    model_config = ConfigDict(json_schema_extra=_feedback_schema)

    type: Literal["feedback"] = "feedback"
    task: TaskName
    inference_id: EventId
    signal: FeedbackSignal
    rating: Annotated[int, Strict()] | None = Field(
        default=None, ge=1, le=5, description="1-5; only with 'rating'."
    )
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
