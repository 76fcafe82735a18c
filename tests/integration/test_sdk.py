"""The Python SDK into DuckDB, and through a broker outage without losing an event."""

from __future__ import annotations

import time

import pytest

from feedback.client import FlywheelClient
from feedback.exceptions import InvalidEventError
from services.topics import ensure_topics
from tests.integration.conftest import stored

pytestmark = pytest.mark.integration


def test_sdk_events_reach_the_store(control_plane, tmp_path):
    with FlywheelClient(control_plane.bootstrap, spool_dir=tmp_path / "spool") as client:
        ids = [client.log_inference(task="spam", input=f"mail {i}", output="ham",
                                    base_model="smollm2", latency_ms=12.5, mean_logprob=-0.3)
               for i in range(200)]  # fmt: skip
        client.send_feedback(task="spam", inference_id=ids[0], signal="rating", rating=4)
        client.send_correction(task="spam", inference_id=ids[1], corrected_output="spam",
                               reviewer="ana", note="phishing")  # fmt: skip
        with pytest.raises(InvalidEventError, match="rating"):
            client.send_feedback(task="spam", inference_id=ids[0], signal="rating")
    status = control_plane.wait_for(
        lambda s: stored(s, "inference") == 200 and stored(s, "feedback") == 1
        and stored(s, "correction") == 1
    )
    assert status["tasks"]["spam"]["ground_truth"] == 1


def test_broker_down_then_up_spools_and_replays_everything(control_plane, broker, tmp_path):
    spool_dir = tmp_path / "spool"
    first = FlywheelClient(control_plane.bootstrap, spool_dir=spool_dir, linger_s=60)
    early = [first.log_inference(task="spam", input=f"early {i}", output="ham",
                                 base_model="smollm2") for i in range(50)]  # fmt: skip
    first.flush()
    control_plane.wait_for(lambda s: stored(s, "inference") == 50)

    broker.stop()
    started = time.monotonic()
    during = [first.log_inference(task="spam", input=f"outage {i}", output="ham",
                                  base_model="smollm2") for i in range(300)]  # fmt: skip
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
