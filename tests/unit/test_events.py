"""The event contract: what is accepted, what is refused, and why."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from schemas import CorrectionEvent, InferenceEvent, Invalid, parse_event, parse_object
from schemas.export import json_schemas, render


def inference(**changes: object) -> dict:
    event = {
        "type": "inference",
        "event_id": "inf-1",
        "occurred_at": "2026-11-01T10:00:00+02:00",
        "task": "spam",
        "input": "Win money",
        "output": "spam",
        "base_model": "smollm2",
    }
    event.update(changes)
    return event


def reason(obj: dict) -> str:
    result = parse_object(obj)
    assert isinstance(result, Invalid), f"expected a rejection, got {result!r}"
    return result.reason


def test_valid_inference_is_normalised_to_utc():
    event = parse_object(inference())
    assert isinstance(event, InferenceEvent)
    assert event.occurred_at == datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
    assert event.origin == "production" and event.schema_version == 1


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"occurred_at": "2026-11-01T10:00:00"}, "time zone"),
        ({"occurred_at": "1999-12-31T00:00:00Z"}, "greater than or equal to 2000"),
        ({"occurred_at": (datetime.now(UTC) + timedelta(days=2)).isoformat()}, "future"),
        ({"input": "a\x00b"}, "NUL"),
        ({"input": "x" * 40_000}, "at most 32768"),
        ({"task": "Spam Task"}, "task"),
        ({"event_id": "has space"}, "event_id"),
        ({"surprise": 1}, "surprise"),
        ({"schema_version": 2}, "schema_version"),
        ({"metadata": {"k": "v" * 2000}}, "at most 1024"),
        ({"metadata": {f"k{i}": i for i in range(33)}}, "at most 32"),
        ({"metadata": {"nested": {"a": 1}}}, "metadata"),
        ({"latency_ms": -1}, "latency_ms"),
        ({"input": ""}, "input"),
    ],
)
def test_bad_inference_is_refused_with_the_field_named(changes, expected):
    assert expected in reason(inference(**changes))


@pytest.mark.parametrize(
    ("raw_field", "expected"),
    [
        ('"latency_ms": "12"', "latency_ms: Input should be a valid number"),
        ('"latency_ms": true', "latency_ms: Input should be a valid number"),
        ('"mean_logprob": -Infinity', "mean_logprob: Input should be a finite number"),
        ('"metadata": {"x": NaN}', "finite number"),
        ('"metadata": {"x": Infinity}', "finite number"),
        ('"metadata": {"x": 1e400}', "finite number"),
        ('"input": 12', "input: Input should be a valid string"),
        ('"task": ["spam"]', "task: Input should be a valid string"),
    ],
)
def test_the_contract_is_strict_json(raw_field, expected):
    """The issue's loose types, over both decoders: Kafka's (bytes) and HTTP's (objects)."""
    name = raw_field.split(":")[0].strip('"')
    fields = {k: v for k, v in inference().items() if k != name}
    raw = (json.dumps(fields)[:-1] + ", " + raw_field + "}").encode()
    from_kafka = parse_event(raw, expected_type="inference")
    from_http = parse_object(json.loads(raw))
    assert isinstance(from_kafka, Invalid) and expected in from_kafka.reason
    assert isinstance(from_http, Invalid) and expected in from_http.reason


@pytest.mark.parametrize("epoch", [1_767_225_600, 1_767_225_600_000, 1.7e9])
def test_occurred_at_is_an_iso_string_not_an_epoch(epoch):
    assert "occurred_at: must be an ISO 8601 string" in reason(inference(occurred_at=epoch))
    raw = json.dumps(inference(occurred_at=epoch)).encode()
    assert "ISO 8601 string" in parse_event(raw).reason


def test_json_schema_requires_the_type_and_constrains_metadata_keys():
    schema = json_schemas()["inference.schema.json"]
    assert "type" in schema["required"]
    keys = schema["properties"]["metadata"]["propertyNames"]
    assert keys["pattern"] == "^[^\\x00]*$" and keys["maxLength"] == 64
    assert "patternProperties" not in schema["properties"]["metadata"]
    assert "NUL" in reason(inference(metadata={"a\x00b": 1}))


def test_feedback_signal_and_payload_must_agree():
    base = {
        "type": "feedback",
        "event_id": "f",
        "occurred_at": "2026-11-01T10:00:00Z",
        "task": "spam",
        "inference_id": "inf-1",
    }
    assert "rating" in reason({**base, "signal": "rating"})
    assert "rating" in reason({**base, "signal": "thumbs_up", "rating": 4})
    assert "edited_output" in reason({**base, "signal": "edited"})
    assert "less than or equal to 5" in reason({**base, "signal": "rating", "rating": 9})
    assert not isinstance(parse_object({**base, "signal": "rating", "rating": 4}), Invalid)


def test_correction_roundtrips_through_json():
    event = CorrectionEvent(
        event_id="c1",
        occurred_at=datetime.now(UTC),
        task="faq",
        inference_id="inf-1",
        corrected_output="Our office opens at 8.",
        reviewer="ana",
        note="hours changed",
    )
    assert parse_event(event.model_dump_json().encode()) == event


def test_topic_mismatch_and_garbage_are_explained():
    raw = json.dumps(inference()).encode()
    assert "flywheel.inference" in parse_event(raw, expected_type="correction").reason
    assert "not UTF-8" in parse_event(b"\xff\xfe").reason
    assert "limit" in parse_event(b"x" * 200_000).reason


def test_committed_json_schemas_match_the_models():
    """Regenerate with `make schemas` when the models change."""
    for name, schema in json_schemas().items():
        committed = Path("schemas") / name
        assert committed.read_text() == render(schema), f"{committed} drifted from the models"


def test_json_schema_requires_what_the_model_requires():
    schema = json_schemas()["inference.schema.json"]
    assert {"event_id", "occurred_at", "task", "input", "output", "base_model"} <= set(
        schema["required"]
    )
    assert schema["additionalProperties"] is False
