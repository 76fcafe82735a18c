"""Producing live traffic and reading ``flywheel.live_counts`` in tests, and a control plane
whose live guard decides quickly."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer

from schemas.topics import FEEDBACK, INFERENCE, LIVE_COUNTS
from tests.processes import ControlPlaneProcess, running


def live_env(tiny_model_dir: Path, window_s: float, **extra: str) -> dict[str, str]:
    """Settings of a control plane on the tiny model whose live guard checks every half
    second over windows of ``window_s`` seconds, plus ``extra``."""
    return {
        "FLYWHEEL_BASE_MODEL": str(tiny_model_dir),
        "FLYWHEEL_LIVE_CHECK_INTERVAL_S": "0.5",
        "FLYWHEEL_LIVE_WINDOW_S": str(window_s),
        **extra,
    }


@contextmanager
def live_plane(
    home: Path, bootstrap: str, tiny_model_dir: Path, window_s: float
) -> Iterator[ControlPlaneProcess]:
    """A started control plane with ``live_env``'s settings, killed at the end if a test
    left it running."""
    plane = ControlPlaneProcess(home, bootstrap, extra_env=live_env(tiny_model_dir, window_s))
    with running(plane):
        yield plane


def now() -> str:
    return datetime.now(UTC).isoformat()


def answer(task: str, adapter_id: str | None, inference_id: str | None = None) -> dict[str, Any]:
    return {
        "type": "inference",
        "event_id": inference_id or uuid.uuid4().hex,
        "occurred_at": now(),
        "task": task,
        "input": "q",
        "output": "a",
        "base_model": "tiny",
        "adapter_id": adapter_id,
    }


def feedback(task: str, inference_id: str, signal: str) -> dict[str, Any]:
    return {
        "type": "feedback",
        "event_id": uuid.uuid4().hex,
        "occurred_at": now(),
        "task": task,
        "inference_id": inference_id,
        "signal": signal,
    }


def send(bootstrap: str, topic: str, events: list[dict[str, Any]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for event in events:
        producer.send(topic, key=event["task"].encode(), value=json.dumps(event).encode())
    producer.flush()
    producer.close()


def traffic(
    bootstrap: str, task: str, adapter_id: str | None, answers: int, thumbs_down: int
) -> None:
    """``answers`` answers by ``adapter_id``, each judged: the first ``thumbs_down`` down."""
    made = [answer(task, adapter_id) for _ in range(answers)]
    send(bootstrap, INFERENCE, made)
    signals = [
        feedback(task, a["event_id"], "thumbs_down" if i < thumbs_down else "thumbs_up")
        for i, a in enumerate(made)
    ]
    send(bootstrap, FEEDBACK, signals)


def read_live_counts(
    bootstrap: str,
    until: Callable[[dict[tuple[str, str | None], dict[str, int]]], bool],
    timeout_s: float = 60,
) -> dict[tuple[str, str | None], dict[str, int]]:
    """Totals per (task, adapter) over all windows, from the newest message of each window,
    once ``until`` holds for them."""
    consumer = KafkaConsumer(
        LIVE_COUNTS,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=500,
    )
    latest: dict[tuple[str, str | None, int], dict[str, int]] = {}
    deadline = time.monotonic() + timeout_s
    totals: dict[tuple[str, str | None], dict[str, int]] = {}
    try:
        while time.monotonic() < deadline:
            for record in consumer:
                message = json.loads(record.value)
                key = (message["task"], message["adapter_id"], message["window_start"])
                latest[key] = message["counts"]
            totals = {}
            for (task, adapter, _), counts in latest.items():
                summed = totals.setdefault((task, adapter), {})
                for name, value in counts.items():
                    summed[name] = summed.get(name, 0) + value
            if until(totals):
                return totals
    finally:
        consumer.close()
    raise AssertionError(f"live counts never met the condition; last totals: {totals}")
