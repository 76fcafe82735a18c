"""Decoding raw Kafka records: every record becomes an event or an explained rejection."""

from __future__ import annotations

import base64
import json

from feedback.importer import import_records
from feedback.ingest import RawRecord, deadletter_message, decode_records
from schemas.topics import CORRECTIONS, INFERENCE


def event_bytes(event_id: str) -> bytes:
    return json.dumps(
        {
            "type": "inference",
            "event_id": event_id,
            "occurred_at": "2026-11-01T10:00:00Z",
            "task": "spam",
            "input": "hi",
            "output": "ham",
            "base_model": "smollm2",
        }
    ).encode()


def test_good_bad_and_misrouted_records():
    batch = decode_records(
        [
            RawRecord(INFERENCE, 0, 10, event_bytes("ok")),
            RawRecord(INFERENCE, 0, 11, b"{not json"),
            RawRecord(INFERENCE, 1, 3, None),
            RawRecord(CORRECTIONS, 0, 5, event_bytes("misrouted")),
            RawRecord("other.topic", 0, 1, event_bytes("stray")),
        ]
    )
    assert [e.event_id for e in batch.events] == ["ok"]
    rejected = {r.rejection_id: r for r in batch.rejections}
    assert set(rejected) == {
        f"{INFERENCE}:0:11",
        f"{INFERENCE}:1:3",
        f"{CORRECTIONS}:0:5",
        "other.topic:0:1",
    }
    assert rejected[f"{INFERENCE}:0:11"].event_type == "inference"  # known from its topic
    assert "null value" in rejected[f"{INFERENCE}:1:3"].reason
    assert "send it to flywheel.inference" in rejected[f"{CORRECTIONS}:0:5"].reason
    assert rejected[f"{CORRECTIONS}:0:5"].event_id == "misrouted"


def test_deadletter_message_keeps_binary_payloads():
    batch = decode_records([RawRecord(INFERENCE, 0, 1, b"\xff\x00garbage")])
    message = json.loads(deadletter_message(batch.rejections[0]))
    assert message["raw_encoding"] == "base64"
    assert base64.b64decode(message["raw"]) == b"\xff\x00garbage"
    assert message["reason"] and message["source"] == f"kafka:{INFERENCE}"


def test_import_ids_are_content_hashes_and_bad_lines_are_flagged():
    lines = [
        '{"input": "q", "output": "a"}',
        "",
        "{oops",
        '{"input": "q", "output": "a"}',
        '{"input": "only"}',
    ]
    records = list(import_records(lines, task="faq", source="faq.jsonl"))
    assert [r.line_number for r in records] == [1, 3, 4, 5]
    first, broken, again, missing = records
    assert json.loads(first.value)["event_id"] == json.loads(again.value)["event_id"]
    assert first.problem is None and json.loads(first.value)["origin"] == "import"
    assert "not JSON" in broken.problem
    assert "output" in missing.problem


def test_the_4kb_nesting_bomb_is_rejected_and_the_events_around_it_are_kept():
    """The issue's poison messages: before, decoding raised RecursionError and ingest died."""
    bombs = [b"[" * 2000 + b"]" * 2000, b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"]
    batch = decode_records(
        [
            RawRecord(INFERENCE, 0, 1, event_bytes("before")),
            *(RawRecord(INFERENCE, 0, 2 + i, bomb) for i, bomb in enumerate(bombs)),
            RawRecord(INFERENCE, 0, 4, event_bytes("after")),
        ]
    )
    assert [e.event_id for e in batch.events] == ["before", "after"]
    assert [r.rejection_id for r in batch.rejections] == [f"{INFERENCE}:0:2", f"{INFERENCE}:0:3"]
    assert "nested deeper than 32 levels" in batch.rejections[0].reason
    assert "bytes; the limit is" in batch.rejections[1].reason


def test_a_dead_letter_carries_the_head_of_a_huge_payload_and_says_so():
    huge = json.dumps({"event_id": "big", "input": "\u0001" * 900_000}).encode()
    [rejection] = decode_records([RawRecord(INFERENCE, 0, 7, huge)]).rejections
    message = json.loads(deadletter_message(rejection))
    assert len(deadletter_message(rejection)) < 1_000_000
    assert message["raw_truncated"] is True and message["raw_size"] == len(huge)
    assert huge.decode().startswith(message["raw"]) and message["event_id"] == "big"
    assert "the limit is" in message["reason"]


def test_a_lone_surrogate_on_kafka_is_refused_by_field_not_as_broken_json():
    """The fast JSON parser refuses a lone surrogate escape as 'unexpected end of hex escape',
    which sends a producer hunting for a syntax error; the reason must name the field."""
    event = json.loads(event_bytes("lone"))
    raw = json.dumps({**event, "input": "a\ud800b"}).encode()  # ensure_ascii: a \ud800 escape
    batch = decode_records([RawRecord(INFERENCE, 0, 7, raw)])
    assert batch.events == []
    (rejection,) = batch.rejections
    assert "input" in rejection.reason
    assert "lone surrogate" in rejection.reason
    assert rejection.event_id == "lone"
