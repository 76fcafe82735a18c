"""The Python SDK into DuckDB, and through a broker outage without losing an event."""

from __future__ import annotations

import pytest

from feedback.client import FlywheelClient
from feedback.exceptions import InvalidEventError
from tests.integration.conftest import stored

pytestmark = pytest.mark.integration


def test_sdk_events_reach_the_store(control_plane, tmp_path):
    with FlywheelClient(control_plane.bootstrap, spool_dir=tmp_path / "spool") as client:
        ids = [
            client.log_inference(
                task="spam",
                input=f"mail {i}",
                output="ham",
                base_model="smollm2",
                latency_ms=12.5,
                mean_logprob=-0.3,
            )
            for i in range(200)
        ]
        client.send_feedback(task="spam", inference_id=ids[0], signal="rating", rating=4)
        client.send_correction(
            task="spam",
            inference_id=ids[1],
            corrected_output="spam",
            reviewer="ana",
            note="phishing",
        )
        with pytest.raises(InvalidEventError, match="rating"):
            client.send_feedback(task="spam", inference_id=ids[0], signal="rating")
    status = control_plane.wait_for(
        lambda s: (
            stored(s, "inference") == 200
            and stored(s, "feedback") == 1
            and stored(s, "correction") == 1
        )
    )
    assert status["tasks"]["spam"]["ground_truth"] == 1
