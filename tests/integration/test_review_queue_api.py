"""Two reviewers work the queue through the real control plane: leases keep them apart,
an expired lease frees an item, and verdicts reach the store as correction events via Kafka."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx
import pytest

from tests.integration.conftest import ControlPlaneProcess, create_token

pytestmark = pytest.mark.integration
LEASE_S = 4


@pytest.fixture
def plane(home, broker):
    plane = ControlPlaneProcess(
        home, broker.bootstrap, extra_env={"FLYWHEEL_REVIEW_LEASE_S": str(LEASE_S)}
    )
    plane.start()
    yield plane
    plane.stop()


def event(event_id: str, **fields) -> dict:
    return {"event_id": event_id, "occurred_at": datetime.now(UTC).isoformat(), **fields}


def answer(event_id: str, logprob: float) -> dict:
    return event(
        event_id,
        type="inference",
        task="spam",
        input=f"email {event_id}",
        output="ham",
        base_model="smollm2",
        mean_logprob=logprob,
    )


class Reviewer:
    def __init__(self, plane: ControlPlaneProcess, name: str) -> None:
        self.plane = plane
        self.headers = {"Authorization": f"Bearer {create_token(plane, 'reviewer', name)}"}

    def lease(self) -> str | None:
        response = httpx.post(
            f"{self.plane.url}/v1/review/lease", json={"task": "spam"}, headers=self.headers
        )
        assert response.status_code == 200, response.text
        item = response.json()["item"]
        return item and item["inference_id"]

    def act(self, inference_id: str, verdict: str, body: dict | None = None) -> httpx.Response:
        return httpx.post(
            f"{self.plane.url}/v1/review/items/{inference_id}/{verdict}",
            json=body or {},
            headers=self.headers,
        )


def test_two_reviewers_leases_expiry_and_verdicts_through_kafka(plane):
    app = {"Authorization": f"Bearer {create_token(plane, 'app')}"}
    events = [
        answer("sure", -0.05),
        answer("unsure", -2.5),
        answer("complained", -0.1),
        event(
            "fb-1", type="feedback", task="spam", inference_id="complained", signal="thumbs_down"
        ),
    ]
    assert (
        httpx.post(f"{plane.url}/v1/events", json={"events": events}, headers=app).json()[
            "accepted"
        ]
        == 4
    )
    plane.wait_for(
        lambda s: s["events"]["feedback"]["stored"] == 1 and s["events"]["inference"]["stored"] == 3
    )

    ana, ben = Reviewer(plane, "ana"), Reviewer(plane, "ben")
    assert ana.lease() == "complained"  # negative feedback first
    assert ben.lease() == "unsure"  # then the least confident, never ana's item
    assert ana.lease() == "complained"  # asking again keeps your own item
    taken = ben.act("complained", "approve")
    assert taken.status_code == 409 and "leased to another reviewer" in taken.json()["detail"]
    assert ana.act("complained", "correct", {"corrected_output": "spam"}).status_code == 200
    assert ben.act("unsure", "approve").status_code == 200
    assert ana.lease() == "sure"  # the calibration sample comes last
    time.sleep(LEASE_S + 0.5)
    assert ben.lease() == "sure"  # ana's lease expired
    late = ana.act("sure", "approve")
    assert late.status_code == 409
    assert ben.act("sure", "skip").status_code == 200
    assert ben.lease() is None  # skipped items go to others, not back to ben

    status = plane.wait_for(lambda s: s["events"]["correction"]["stored"] == 2)
    assert status["tasks"]["spam"]["ground_truth"] == 2
    operator = {"Authorization": f"Bearer {create_token(plane, 'operator')}"}
    audit = httpx.get(f"{plane.url}/v1/audit?task=spam", headers=operator).json()
    assert sorted((a["actor"], a["action"]) for a in audit) == [
        ("ana", "review:corrected"),
        ("ben", "review:approved"),
    ]
    plane.stop()
    rows = plane.query(
        "SELECT inference_id, corrected_output, reviewer FROM corrections ORDER BY inference_id"
    )
    assert rows == [("complained", "spam", "ana"), ("unsure", "ham", "ben")]
