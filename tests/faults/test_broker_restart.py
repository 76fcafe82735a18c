"""The broker stops and restarts while an app keeps sending: the SDK spools to disk and
replays, and every event is stored once."""

from __future__ import annotations

import time

import pytest

from feedback.client import FlywheelClient
from services.topics import ensure_topics
from tests.processes import stored

pytestmark = pytest.mark.integration


def test_broker_down_then_up_spools_and_replays_everything(control_plane, broker, tmp_path):
    spool_dir = tmp_path / "spool"
    first = FlywheelClient(control_plane.bootstrap, spool_dir=spool_dir, linger_s=60)
    early = [
        first.log_inference(task="spam", input=f"early {i}", output="ham", base_model="smollm2")
        for i in range(50)
    ]
    first.flush()
    control_plane.wait_for(lambda s: stored(s, "inference") == 50)

    broker.stop()
    started = time.monotonic()
    during = [
        first.log_inference(task="spam", input=f"outage {i}", output="ham", base_model="smollm2")
        for i in range(300)
    ]
    result = first.flush(timeout_s=2)
    assert result.spooled == 300 and first.spooled == 300
    assert time.monotonic() - started < 20, "an app must not hang while the broker is down"
    first.close(timeout_s=1)  # the app restarts while the broker is still down

    broker.start()
    ensure_topics(broker.bootstrap, partitions=2)  # the bundled broker keeps no state
    second = FlywheelClient(control_plane.bootstrap, spool_dir=spool_dir)
    assert second.flush().spooled == 0 and second.spooled == 0
    second.close()
    control_plane.wait_for(lambda s: stored(s, "inference") == 350, timeout_s=120)
    assert control_plane.stop() == 0
    rows = {r[0] for r in control_plane.query("SELECT event_id FROM inferences")}
    assert rows == set(early) | set(during)
