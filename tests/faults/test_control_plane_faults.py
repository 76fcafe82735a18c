"""The control plane survives kill -9 without losing or doubling events, and fails clearly."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime

import pytest
from kafka import KafkaProducer

from schemas.topics import INFERENCE
from tests.conftest import free_port
from tests.integration.conftest import ControlPlaneProcess, stored

pytestmark = pytest.mark.integration

TOTAL = 30_000


def produce_steadily(bootstrap: str, ids: list[str], per_second: int) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=10)
    occurred = datetime.now(UTC).isoformat()
    chunk = max(1, per_second // 20)
    for start in range(0, len(ids), chunk):
        for event_id in ids[start : start + chunk]:
            event = {
                "type": "inference",
                "event_id": event_id,
                "occurred_at": occurred,
                "task": "spam",
                "input": f"email {event_id}",
                "output": "ham",
                "base_model": "smollm2",
            }
            producer.send(INFERENCE, json.dumps(event).encode(), key=b"spam")
        time.sleep(0.05)
    producer.flush(30)
    producer.close()


def test_kill_9_mid_stream_then_restart_stores_every_event_exactly_once(control_plane):
    ids = [f"k9-{i:06d}" for i in range(TOTAL)]
    sender = threading.Thread(
        target=produce_steadily, args=(control_plane.bootstrap, ids, 6_000), daemon=True
    )
    sender.start()
    before_kill = control_plane.wait_for(lambda s: stored(s, "inference") >= 3_000)
    control_plane.kill()  # SIGKILL: no shutdown code runs
    assert stored(before_kill, "inference") < TOTAL, "the kill must land mid-stream"

    control_plane.start()
    control_plane.wait_for(lambda s: stored(s, "inference") == TOTAL, timeout_s=120)
    sender.join(60)
    time.sleep(1.0)  # anything re-delivered after the count was reached would show up now
    assert stored(control_plane.status(), "inference") == TOTAL
    assert control_plane.stop() == 0
    rows = control_plane.query("SELECT event_id FROM inferences ORDER BY event_id")
    assert [r[0] for r in rows] == ids


def run_up(env: dict[str, str], timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli.main", "up"],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def test_second_control_plane_on_the_same_home_fails_clearly(control_plane):
    second = ControlPlaneProcess(control_plane.home, control_plane.bootstrap)
    result = run_up(second.env)
    assert result.returncode == 1
    assert "in use by another process" in result.stderr
    assert "FLYWHEEL_HOME" in result.stderr


def test_taken_api_port_fails_clearly(home, broker):
    plane = ControlPlaneProcess(home, broker.bootstrap)
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", plane.port))
        blocker.listen()
        result = run_up(plane.env)
    assert result.returncode == 1
    assert f"port {plane.port}" in result.stderr and "FLYWHEEL_API_PORT" in result.stderr


def test_unreachable_kafka_fails_clearly(home):
    plane = ControlPlaneProcess(home, f"127.0.0.1:{free_port()}")
    started = time.monotonic()
    result = run_up(plane.env)
    assert result.returncode == 1
    assert "cannot reach Kafka" in result.stderr
    assert time.monotonic() - started < 45
