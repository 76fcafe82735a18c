"""The published JSON Schemas and the service agree both ways.

An outside producer generates events from the exported schema files (hypothesis-jsonschema,
as a producer in another language would validate before sending): every one is decoded by
the ingest and stored in a real DuckDB file. And every event the service accepts is valid
under the schema file of its type.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis_jsonschema import from_schema

from feedback.ingest import RawRecord, decode_records
from feedback.store import connect
from feedback.writer import write_batch
from schemas import Invalid, parse_object
from schemas.topics import TOPIC_OF_TYPE
from tests.unit.test_bad_input_properties import as_json, valid_events

SCHEMAS = {
    event_type: json.loads(Path(f"schemas/{event_type}.schema.json").read_text())
    for event_type in TOPIC_OF_TYPE
}
VALIDATORS = {
    event_type: jsonschema.Draft202012Validator(schema) for event_type, schema in SCHEMAS.items()
}
AGREEMENT = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
_unique = itertools.count()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = connect(tmp_path_factory.mktemp("agreement") / "store.duckdb")
    yield connection
    connection.close()


def as_sent_by_a_producer(event: dict) -> bytes:
    """What the issue's producer did: ids made unique, ``occurred_at`` now (the schema cannot
    say "not in the future"), then plain JSON."""
    unique = {"event_id": f"gen-{next(_unique)}", "occurred_at": datetime.now(UTC).isoformat()}
    return json.dumps({**event, **unique}).encode()


def check_stored(event_type: str, event: dict, store: duckdb.DuckDBPyConnection) -> None:
    raw = as_sent_by_a_producer(event)
    batch = decode_records([RawRecord(TOPIC_OF_TYPE[event_type], 0, 0, raw)])
    assert not batch.rejections, f"{batch.rejections[0].reason} for {raw!r}"
    assert write_batch(store, batch.events).stored == {event_type: 1}


@AGREEMENT
@given(event=from_schema(SCHEMAS["inference"]))
def test_every_inference_the_schema_admits_is_stored(event, store):
    check_stored("inference", event, store)


@AGREEMENT
@given(event=from_schema(SCHEMAS["feedback"]))
def test_every_feedback_the_schema_admits_is_stored(event, store):
    check_stored("feedback", event, store)


@AGREEMENT
@given(event=from_schema(SCHEMAS["correction"]))
def test_every_correction_the_schema_admits_is_stored(event, store):
    check_stored("correction", event, store)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=valid_events)
def test_every_event_the_service_accepts_is_valid_under_its_schema(event):
    payload = as_json(event)
    parsed = parse_object(payload)
    assert not isinstance(parsed, Invalid), parsed
    VALIDATORS[parsed.type].validate(payload)
    VALIDATORS[parsed.type].validate(parsed.model_dump(mode="json"))


BASE = {
    "type": "inference",
    "event_id": "e-1",
    "occurred_at": "2026-11-01T10:00:00Z",
    "task": "spam",
    "input": "hi",
    "output": "ham",
    "base_model": "smollm2",
}


@pytest.mark.parametrize(
    "change",
    [
        {"type": None},  # the 1,299 in 2,000: the schema did not require it
        {"metadata": {"a\x00b": 1}},  # the 42: keys were not constrained
        {"latency_ms": "12"},
        {"occurred_at": 1_767_225_600},
        {"metadata": {"k": True, "n": "1"}, "mean_logprob": True},
    ],
)
def test_schema_and_service_refuse_the_same_events(change):
    event = {k: v for k, v in {**BASE, **change}.items() if v is not None}
    assert not VALIDATORS["inference"].is_valid(event), "the schema admits it"
    assert isinstance(parse_object(event), Invalid), "the service accepts it"
