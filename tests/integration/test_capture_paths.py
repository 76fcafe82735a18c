"""Events reach DuckDB through every capture path: HTTP, a foreign Kafka client, import."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from schemas.topics import CORRECTIONS, DEADLETTER, FEEDBACK, INFERENCE
from tests.integration.conftest import ControlPlaneProcess, rejected, stored

pytestmark = pytest.mark.integration


def now() -> str:
    return datetime.now(UTC).isoformat()


def inference(event_id: str, task: str = "spam", **extra: object) -> dict:
    return {
        "type": "inference",
        "event_id": event_id,
        "occurred_at": now(),
        "task": task,
        "input": f"input of {event_id}",
        "output": "ham",
        "base_model": "smollm2",
        **extra,
    }


def app_token(plane: ControlPlaneProcess, role: str = "app", name: str | None = None) -> str:
    body = {"role": role} if name is None else {"role": role, "name": name}
    response = httpx.post(f"{plane.url}/v1/tokens", json=body, headers=plane.headers())
    response.raise_for_status()
    return response.json()["token"]


def read_topic(bootstrap: str, topic: str, expected: int, timeout_s: float = 20) -> list[dict]:
    """Every message of ``topic`` (no consumer group: partitions assigned by hand)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    messages: list[dict] = []
    deadline = time.monotonic() + timeout_s
    while len(messages) < expected and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            messages.extend(json.loads(m.value) for m in batch)
    consumer.close()
    return messages


def test_http_batch_reports_each_item_and_stores_what_it_accepts(control_plane):
    token = app_token(control_plane)
    reviewer = app_token(control_plane, role="reviewer", name="ana")
    events = [
        inference("http-1"),
        {
            "type": "feedback",
            "event_id": "http-2",
            "occurred_at": now(),
            "task": "spam",
            "inference_id": "http-1",
            "signal": "thumbs_down",
        },
        inference("http-4", input="bad\u0000input"),
        {
            "type": "feedback",
            "event_id": "http-5",
            "occurred_at": now(),
            "task": "spam",
            "inference_id": "http-1",
            "signal": "rating",
        },
    ]
    correction = {
        "type": "correction",
        "event_id": "http-3",
        "occurred_at": now(),
        "task": "spam",
        "inference_id": "http-1",
        "corrected_output": "spam",
        "reviewer": "ana",
    }
    response = httpx.post(
        f"{control_plane.url}/v1/events",
        json={"events": events},
        headers=control_plane.headers(token),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (2, 2)
    by_id = {r["event_id"]: r for r in body["results"]}
    assert by_id["http-4"]["status"] == "rejected" and "NUL" in by_id["http-4"]["reason"]
    assert "rating" in by_id["http-5"]["reason"]
    reviewed = control_plane.post("/v1/events", {"events": [correction]}, token=reviewer)
    assert reviewed.status_code == 200 and reviewed.json()["accepted"] == 1, reviewed.text

    status = control_plane.wait_for(
        lambda s: (
            stored(s, "inference") == 1
            and stored(s, "correction") == 1
            and stored(s, "feedback") == 1
        )
    )
    assert rejected(status, "inference") == 1 and rejected(status, "feedback") == 1
    assert status["tasks"]["spam"]["ground_truth"] == 1

    dead = read_topic(control_plane.bootstrap, DEADLETTER, expected=2)
    assert {d["event_id"] for d in dead} == {"http-4", "http-5"}
    assert all(d["reason"] for d in dead)

    assert control_plane.stop() == 0
    rows = control_plane.query("SELECT event_id, reason, raw FROM rejected_events ORDER BY 1")
    assert [r[0] for r in rows] == ["http-4", "http-5"]
    assert b"bad\\u0000input" in rows[0][2]  # the raw payload is kept for the operator
    truth = control_plane.query("SELECT inference_id, output, source FROM ground_truth")
    assert truth == [("http-1", "spam", "correction")]


def test_http_refuses_missing_wrong_role_and_oversized(control_plane):
    url = f"{control_plane.url}/v1/events"
    body = {"events": [inference("x")]}
    assert httpx.post(url, json=body).status_code == 401
    assert httpx.post(url, json=body, headers={"Authorization": "Bearer nope"}).status_code == 401
    operator = app_token(control_plane, role="operator")
    denied = httpx.post(url, json=body, headers=control_plane.headers(operator))
    assert denied.status_code == 403 and "app" in denied.json()["detail"]

    token = app_token(control_plane)
    huge = {"events": [inference(f"big-{i}", input="x" * 30_000) for i in range(300)]}
    too_big = httpx.post(url, json=huge, headers=control_plane.headers(token))
    assert too_big.status_code == 413 and "limit" in too_big.json()["detail"]
    many = {"events": [inference(f"many-{i}") for i in range(1001)]}
    too_many = httpx.post(url, json=many, headers=control_plane.headers(token))
    assert too_many.status_code == 413 and "1000" in too_many.json()["detail"]
    not_json = httpx.post(url, content=b"{nope", headers=control_plane.headers(token))
    assert not_json.status_code == 400
    assert httpx.get(f"{control_plane.url}/healthz").status_code == 200  # no token needed


def test_confluent_kafka_producer_following_the_json_schemas(control_plane):
    """librdkafka, a client independent of the service's own, writes per the published schema."""
    confluent_kafka = pytest.importorskip("confluent_kafka")
    schema = json.loads(Path("schemas/inference.schema.json").read_text())
    producer = confluent_kafka.Producer({"bootstrap.servers": control_plane.bootstrap})
    for i in range(50):
        event = {key: inference(f"rdk-{i}")[key] for key in schema["required"]}
        event["type"] = "inference"
        producer.produce(INFERENCE, json.dumps(event).encode(), key=b"spam")
    producer.produce(
        FEEDBACK,
        json.dumps(
            {
                "type": "feedback",
                "event_id": "rdk-fb",
                "occurred_at": now(),
                "task": "spam",
                "inference_id": "rdk-0",
                "signal": "accepted",
            }
        ).encode(),
    )
    # Malformed and oversized events from a foreign producer: dead-lettered, never blocking.
    producer.produce(INFERENCE, b"\xff\xfe not json at all")
    producer.produce(CORRECTIONS, json.dumps(inference("wrong-topic")).encode())
    producer.produce(INFERENCE, json.dumps(inference("huge", input="y" * 200_000)).encode())
    producer.produce(INFERENCE, json.dumps(inference("after-bad")).encode())
    assert producer.flush(20) == 0

    status = control_plane.wait_for(
        lambda s: (
            stored(s, "inference") == 51
            and stored(s, "feedback") == 1
            and rejected(s, "inference") + rejected(s, "correction") == 3
        )
    )
    assert status["tasks"]["spam"]["ground_truth"] == 1
    reasons = " | ".join(r["reason"] for r in status["top_rejection_reasons"])
    assert "not UTF-8" in reasons
    assert "send it to flywheel.inference" in reasons
    assert "the limit is" in reasons

    dead = read_topic(control_plane.bootstrap, DEADLETTER, expected=3)
    assert {d["source"] for d in dead} == {"kafka:flywheel.inference", "kafka:flywheel.corrections"}
    assert any(d["raw_encoding"] == "base64" for d in dead)


def test_import_jsonl_goes_through_kafka_and_is_idempotent(control_plane, tmp_path):
    data = tmp_path / "examples.jsonl"
    lines = [json.dumps({"input": f"question {i}", "output": f"answer {i}"}) for i in range(40)]
    data.write_text("\n".join([*lines, "{broken", json.dumps({"input": "no output"})]) + "\n")
    command = [sys.executable, "-m", "services.cli.main", "import", "faq", "--data", str(data)]
    for _ in range(2):  # importing the same file twice stores each example once
        result = subprocess.run(command, env=control_plane.env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert "40 valid, 2 will be rejected" in result.stdout
    status = control_plane.wait_for(
        lambda s: (
            s["tasks"].get("faq", {}).get("ground_truth") == 40
            # each delivery of a bad line is its own dead-letter record: 2 lines x 2 imports
            and rejected(s, "inference") == 4
            and s["service"]["ingest"]["duplicates_ignored"] >= 40
        )
    )
    assert stored(status, "inference") == 40


def post_raw(plane: ControlPlaneProcess, body: bytes, token: str) -> httpx.Response:
    headers = {**plane.headers(token), "Content-Type": "application/json"}
    return httpx.post(f"{plane.url}/v1/events", content=body, headers=headers, timeout=60)


def test_http_parser_bombs_never_answer_5xx_and_bad_events_are_dead_lettered(control_plane):
    """The issue's bombs over HTTP: 2,000-deep nesting answered 500, a lone surrogate 500, and
    a 5 MiB invalid event 503 "retry" on every retry while the valid one beside it was stored."""
    token = app_token(control_plane)
    deep = b'{"events": [' + b"[" * 2000 + b"]" * 2000 + b"]}"
    nested = post_raw(control_plane, deep, token)
    assert nested.status_code == 400 and "nested deeper than" in nested.json()["detail"]

    surrogate = json.dumps(inference("lone", input="a\ud800b")).encode()  # a \ud800 escape
    huge = json.dumps(inference("huge", input="x" * 5 * 1024 * 1024)).encode()
    batch = b'{"events": [%s, %s, %s, %s]}' % (
        json.dumps(inference("ok-1")).encode(),
        surrogate,
        huge,
        json.dumps(inference("ok-2")).encode(),
    )
    for _ in range(2):  # the same answer on a retry: nothing here can ever succeed
        response = post_raw(control_plane, batch, token)
        assert response.status_code == 200, response.text
        results = {r["event_id"]: r for r in response.json()["results"]}
        assert [results[i]["status"] for i in ("ok-1", "lone", "huge", "ok-2")] == [
            "accepted",
            "rejected",
            "rejected",
            "accepted",
        ]
        assert "lone surrogate" in results["lone"]["reason"]
        assert "the limit is" in results["huge"]["reason"]

    control_plane.wait_for(
        lambda s: (
            stored(s, "inference") == 2
            and rejected(s, "inference") == 4
            and s["service"]["ingest"]["duplicates_ignored"] == 2  # the retry's valid events
        )
    )
    dead = read_topic(control_plane.bootstrap, DEADLETTER, expected=4)
    by_id = {d["event_id"]: d for d in dead}
    assert set(by_id) == {"lone", "huge"}
    assert by_id["huge"]["raw_truncated"] and by_id["huge"]["raw_size"] > 5 * 1024 * 1024
    assert "\\ud800" in by_id["lone"]["raw"]  # the escape as sent, readable by the operator


def test_corrections_need_a_reviewer_token_and_carry_its_name(control_plane):
    """An app token could write ground truth as any reviewer; now the token names the reviewer."""
    app, reviewer = app_token(control_plane), app_token(control_plane, "reviewer", "ana")
    correction = {
        "type": "correction",
        "event_id": "c-1",
        "occurred_at": now(),
        "task": "spam",
        "inference_id": "i-1",
        "corrected_output": "spam",
        "reviewer": "impersonated-reviewer",
    }
    refused = control_plane.post("/v1/events", {"events": [inference("i-1"), correction]}, app)
    assert refused.status_code == 200, refused.text
    first, second = refused.json()["results"]
    assert first["status"] == "accepted" and second["status"] == "rejected"
    assert "needs a token of role reviewer" in second["reason"]
    wrong_way = control_plane.post("/v1/events", {"events": [inference("i-2")]}, reviewer)
    assert "needs a token of role app" in wrong_way.json()["results"][0]["reason"]

    signed = control_plane.post(
        "/v1/events", {"events": [{**correction, "event_id": "c-2"}]}, reviewer
    )
    assert signed.json()["accepted"] == 1, signed.text
    control_plane.wait_for(lambda s: stored(s, "correction") == 1 and stored(s, "inference") == 1)
    assert control_plane.stop() == 0
    assert control_plane.query("SELECT event_id, reviewer FROM corrections") == [("c-2", "ana")]
    truth = control_plane.query("SELECT inference_id, source FROM ground_truth")
    assert truth == [("i-1", "correction")]


def test_kafka_poison_messages_are_dead_lettered_and_ingest_survives_restarts(control_plane):
    """The issue's 4 KB message killed ingest, then every restart; the event sent before it was
    never stored. Now it is rejected to the dead-letter topic and table, and ingest carries on."""
    producer = KafkaProducer(bootstrap_servers=control_plane.bootstrap)
    producer.send(INFERENCE, json.dumps(inference("before-bomb")).encode(), partition=0)
    producer.send(INFERENCE, b"[" * 2000 + b"]" * 2000, partition=0)
    producer.send(INFERENCE, b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", partition=0)
    producer.send(INFERENCE, json.dumps(inference("after-bomb")).encode(), partition=0)
    producer.flush(20)
    control_plane.wait_for(lambda s: stored(s, "inference") == 2 and rejected(s, "inference") == 2)
    dead = read_topic(control_plane.bootstrap, DEADLETTER, expected=2)
    assert all(d["reason"] and d["source"] == f"kafka:{INFERENCE}" for d in dead)

    assert control_plane.stop() == 0
    control_plane.start()  # the restart reads on from the committed offsets
    producer.send(INFERENCE, json.dumps(inference("after-restart")).encode(), partition=0)
    producer.flush(20)
    control_plane.wait_for(lambda s: stored(s, "inference") == 3)
    producer.close()
    assert control_plane.stop() == 0
    rows = control_plane.query("SELECT count(*) FROM rejected_events")
    assert rows == [(2,)]
