"""The Python SDK into DuckDB, and through a broker outage without losing an event."""

from __future__ import annotations

import time

import pytest

from feedback.client import FlywheelClient
from feedback.exceptions import InvalidEventError
from services.topics import ensure_topics
from tests.integration.conftest import stored

pytestmark = pytest.mark.integration


def test_sdk_events_reach_the_store_through_a_broker_outage(control_plane, broker, tmp_path):
    spool_dir = tmp_path / "spool"
    with FlywheelClient(control_plane.bootstrap, spool_dir=spool_dir) as client:
        before = [
            client.log_inference(
                task="spam",
                input=f"mail {i}",
                output="ham",
                base_model="smollm2",
                latency_ms=12.5,
                mean_logprob=-0.3,
            )
            for i in range(100)
        ]
        control_plane.wait_for(lambda s: stored(s, "inference") == 100)

        broker.stop()  # the outage: the app keeps logging, and no call waits on the broker
        started = time.monotonic()
        during = [
            client.log_inference(task="spam", input=f"down {i}", output="ham", base_model="m")
            for i in range(200)
        ]
        client.send_feedback(task="spam", inference_id=before[0], signal="rating", rating=4)
        client.send_correction(
            task="spam",
            inference_id=during[0],
            corrected_output="spam",
            reviewer="ana",
            note="phishing",
        )
        assert time.monotonic() - started < 1.0, "logging must not wait for a broker that is down"
        wait_until(lambda: client.spooled == 202, "the events sent during the outage spool")
        assert list(spool_dir.glob("*.jsonl")), "spooled events live on disk"

        broker.start()  # the same address; the app does nothing: its sender re-sends alone
        ensure_topics(broker.bootstrap, partitions=2)  # the bundled broker keeps no state
        wait_until(lambda: client.spooled == 0, "the spool drains once the broker is back")
        with pytest.raises(InvalidEventError, match="rating"):
            client.send_feedback(task="spam", inference_id=before[0], signal="rating")

    status = control_plane.wait_for(
        lambda s: (
            stored(s, "inference") == 300
            and stored(s, "feedback") == 1
            and stored(s, "correction") == 1
        ),
        timeout_s=120,
    )
    assert status["tasks"]["spam"]["ground_truth"] == 1
    assert control_plane.stop() == 0
    rows = [r[0] for r in control_plane.query("SELECT event_id FROM inferences")]
    assert sorted(rows) == sorted(before + during)  # each event stored once, none lost
    assert not list(spool_dir.glob("*.jsonl"))


def wait_until(condition, what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout_s} s")
