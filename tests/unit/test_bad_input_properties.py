"""Property-based tests (hypothesis) of bad input: whatever arrives, validation and the ingest
path answer with a stored event or an explained rejection, never an exception; valid events
survive the round trip; names cannot escape the data directory."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedback.ingest import RawRecord, deadletter_message, decode_records
from feedback.writer import Rejection
from schemas import EVENT_MODELS, Invalid, parse_event, parse_object
from schemas.events import _ID_PATTERN, _NAME_PATTERN
from schemas.topics import ALL_TOPICS, INFERENCE, TOPIC_OF_TYPE
from schemas.validation import MAX_EVENT_BYTES, decode_json
from training.lora_recipe import adapter_dir

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=6)
    ),
    max_leaves=20,
)
names = st.from_regex(_NAME_PATTERN, fullmatch=True)
ids = st.from_regex(_ID_PATTERN, fullmatch=True)
texts = st.text(
    st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]),
    min_size=1,
    max_size=300,
)
moments = st.datetimes(
    min_value=datetime(2000, 1, 2), max_value=datetime(2026, 1, 1), timezones=st.just(UTC)
)
fields = {"event_id": ids, "occurred_at": moments, "task": names}
valid_events = st.one_of(
    st.fixed_dictionaries(
        {
            **fields,
            "type": st.just("inference"),
            "input": texts,
            "output": texts,
            "base_model": texts.map(lambda t: t[:256]),
            "mean_logprob": st.none() | st.floats(-100, 0),
        }
    ),
    st.fixed_dictionaries(
        {
            **fields,
            "type": st.just("feedback"),
            "inference_id": ids,
            "signal": st.sampled_from(["thumbs_up", "thumbs_down", "accepted"]),
        }
    ),
    st.fixed_dictionaries(
        {
            **fields,
            "type": st.just("correction"),
            "inference_id": ids,
            "corrected_output": texts,
            "reviewer": texts.map(lambda t: t[:256]),
        }
    ),
)


def as_json(event: dict) -> dict:
    return {**event, "occurred_at": event["occurred_at"].isoformat()}


@FAST
@given(value=json_values)
def test_any_json_value_is_an_event_or_an_explained_rejection(value):
    result = parse_object(value)
    if isinstance(result, Invalid):
        assert result.reason.strip()
    else:
        assert result.type in EVENT_MODELS


@FAST
@given(raw=st.binary(max_size=2048))
def test_any_bytes_are_an_event_or_an_explained_rejection(raw):
    result = parse_event(raw, expected_type="inference")
    assert (isinstance(result, Invalid) and result.reason.strip()) or result.type == "inference"


@FAST
@given(event=valid_events)
def test_valid_events_survive_the_round_trip(event):
    payload = as_json(event)
    parsed = parse_object(payload)
    assert not isinstance(parsed, Invalid), parsed
    again = parse_event(parsed.model_dump_json().encode(), expected_type=event["type"])
    assert again == parsed


@FAST
@given(
    event=valid_events,
    field=st.sampled_from(["task", "event_id"]),
    poison=st.sampled_from(["\x00", "../", "a" * 200, " ", "é"]),
)
def test_one_bad_field_rejects_the_event_and_names_the_field(event, field, poison):
    bad = {**as_json(event), field: poison + event[field]}
    result = parse_object(bad)
    assert isinstance(result, Invalid) and field in result.reason


@FAST
@given(
    records=st.lists(
        st.tuples(
            st.sampled_from([*ALL_TOPICS, "other.topic"]),
            st.one_of(
                st.none(),
                st.binary(max_size=512),
                valid_events.map(lambda e: json.dumps(as_json(e)).encode()),
            ),
        ),
        max_size=30,
    )
)
def test_ingest_decoding_accounts_for_every_record(records):
    raw = [RawRecord(topic, 0, offset, value) for offset, (topic, value) in enumerate(records)]
    batch = decode_records(raw)
    assert len(batch.events) + len(batch.rejections) == len(records)
    assert all(r.reason.strip() for r in batch.rejections)
    for event in batch.events:
        assert TOPIC_OF_TYPE[event.type] in ALL_TOPICS


def _nested(depth: int, opener: bytes, closer: bytes, inner: bytes = b"") -> bytes:
    return opener * depth + inner + closer * depth


# What a hostile or broken producer can send: nesting far past any recursion limit (arrays,
# objects, mixed, unbalanced, inside an event), sizes past every limit, and encodings that are
# not UTF-8 JSON (BOMs, UTF-16, lone surrogate escapes, invalid bytes, NaN, huge numbers).
parser_bombs = st.one_of(
    st.builds(_nested, st.integers(100, 100_000), st.just(b"["), st.just(b"]")),
    st.builds(_nested, st.integers(100, 50_000), st.just(b'{"a":'), st.just(b"}"), st.just(b"1")),
    st.builds(
        lambda depth, closed: b'{"a": ' + b"[" * depth + b"]" * (depth if closed else 0) + b"}",
        st.integers(100, 100_000),
        st.booleans(),
    ),
    st.builds(
        lambda depth, event: (
            json.dumps(as_json(event))[:-1].encode()
            + b', "metadata": {"k": '
            + _nested(depth, b"[{", b"}]")
            + b"}}"
        ),
        st.integers(50, 20_000),
        valid_events,
    ),
    st.builds(
        lambda n: b'{"type": "inference", "input": "' + b"\\u0000" * n + b'"}',
        st.integers(0, 300_000),
    ),
    st.sampled_from(
        [
            b'{"type": "inference", "input": "a\\ud800b"}',
            b'{"event_id": "\\udfff", "task": "\\ud800", "type": "inference"}',
            b"\xef\xbb\xbf{}",
            '{"type": "inference"}'.encode("utf-16"),
            b'{"type": "inference", "latency_ms": NaN, "metadata": {"x": Infinity}}',
            b'{"type": "inference", "latency_ms": 1e400}',
            b'{"type": "inference", "latency_ms": ' + b"9" * 5000 + b"}",
            b"\xed\xa0\x80",
            b"\xc0\xaf",
            b'"' + b"\\" * 10_000,
            b'{"type": ["inference"], "task": {"x": 1}, "event_id": [1]}',
        ]
    ),
    st.binary(min_size=1, max_size=64).map(lambda b: b * 40_000),
)


@FAST
@given(raw=parser_bombs)
def test_parser_bombs_are_rejected_with_reasons_and_dead_letters_stay_publishable(raw):
    batch = decode_records([RawRecord(INFERENCE, 0, 0, raw), RawRecord("other.topic", 0, 1, raw)])
    assert len(batch.rejections) + len(batch.events) == 2
    for rejection in batch.rejections:
        assert rejection.reason.strip()
        message = deadletter_message(rejection)
        assert len(message) < 1_000_000  # Kafka's default message limit is 1 MiB
        assert json.loads(message)["reason"] == rejection.reason
    http = Rejection.of(rejection_id="http:x:0", source="http", reason="bad", raw=raw)
    assert len(http.raw) <= MAX_EVENT_BYTES and http.raw_size == len(raw)


@FAST
@given(raw=parser_bombs | st.binary(max_size=512))
def test_bounded_decoding_answers_a_value_or_a_reason_for_any_bytes(raw):
    result = decode_json(raw, max_bytes=8 * 1024 * 1024)
    assert not isinstance(result, Invalid) or result.reason.strip()


def test_oversized_events_and_far_future_clocks_are_rejected_with_reasons():
    huge = json.dumps({"type": "inference", "input": "x" * (MAX_EVENT_BYTES + 1)}).encode()
    result = parse_event(huge, expected_type="inference")
    assert isinstance(result, Invalid) and "bytes" in result.reason
    future = {
        "type": "feedback",
        "event_id": "e",
        "task": "t",
        "inference_id": "i",
        "signal": "accepted",
        "occurred_at": (datetime.now(UTC) + timedelta(days=2)).isoformat(),
    }
    assert "future" in parse_object(future).reason


@FAST
@given(name=st.text(max_size=40))
def test_no_adapter_name_escapes_the_adapter_store(name, tmp_path_factory):
    store = Path("/srv/flywheel/adapters")
    try:
        path = adapter_dir(store, name)
    except ValueError as error:
        assert "not an adapter id" in str(error)
        return
    assert path.parent == store and path.name == name and name not in (".", "..")


@pytest.mark.parametrize("name", ["../etc", "a/b", "..", ".", "", "a\x00b", "x" * 200])
def test_hostile_adapter_names_are_refused(name):
    with pytest.raises(ValueError, match="not an adapter id"):
        adapter_dir(Path("/srv/adapters"), name)
