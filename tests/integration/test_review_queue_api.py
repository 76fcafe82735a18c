"""Two reviewers work the queue through the real control plane: leases keep them apart,
an expired lease frees an item, and verdicts reach the store as correction events via Kafka."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import httpx
import pytest

from tests.processes import ControlPlaneProcess, create_token, running

pytestmark = pytest.mark.integration
LEASE_S = 4


@pytest.fixture
def plane(home, broker):
    plane = ControlPlaneProcess(
        home, broker.bootstrap, extra_env={"FLYWHEEL_REVIEW_LEASE_S": str(LEASE_S)}
    )
    with running(plane, graceful=True):
        yield plane


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


def send_answers(plane: ControlPlaneProcess, ids: list[str]) -> None:
    app = {"Authorization": f"Bearer {create_token(plane, 'app', 'shop')}"}
    events = [answer(i, -2.0 - n / 10) for n, i in enumerate(ids)]
    accepted = httpx.post(f"{plane.url}/v1/events", json={"events": events}, headers=app)
    assert accepted.json()["accepted"] == len(ids)
    plane.wait_for(lambda s: s["events"]["inference"]["stored"] == len(ids))


async def six_verdicts_at_once(reviewer: Reviewer, inference_id: str) -> list[httpx.Response]:
    """Three approvals and three corrections of one item, sent together by its lease holder."""
    url = f"{reviewer.plane.url}/v1/review/items/{inference_id}"
    async with httpx.AsyncClient(headers=reviewer.headers, timeout=30) as client:
        return list(
            await asyncio.gather(
                *(client.post(f"{url}/approve", json={}) for _ in range(3)),
                *(
                    client.post(f"{url}/correct", json={"corrected_output": f"spam {n}"})
                    for n in range(3)
                ),
            )
        )


def test_a_verdict_is_decided_once_however_many_requests_race(plane):
    rounds = [f"race-{n}" for n in range(5)]
    send_answers(plane, rounds)
    ana = Reviewer(plane, "ana")
    for _ in rounds:
        item = ana.lease()
        answers = asyncio.run(six_verdicts_at_once(ana, item))
        codes = sorted(a.status_code for a in answers)
        assert codes == [200, 409, 409, 409, 409, 409], [(a.status_code, a.text) for a in answers]
        refusal = next(a for a in answers if a.status_code == 409).json()["detail"]
        assert item in refusal and "already" in refusal, refusal

    plane.wait_for(lambda s: s["events"]["correction"]["stored"] >= len(rounds))
    time.sleep(1)  # a stray second correction would arrive within this
    operator = {"Authorization": f"Bearer {create_token(plane, 'operator', 'olga')}"}
    audit = httpx.get(f"{plane.url}/v1/audit?task=spam", headers=operator).json()
    assert len(audit) == len(rounds)
    plane.stop()
    per_item = plane.query(
        "SELECT inference_id, count(*) FROM corrections GROUP BY inference_id ORDER BY 1"
    )
    assert per_item == [(i, 1) for i in rounds]


def test_leases_belong_to_tokens_and_token_names_are_unique(plane):
    send_answers(plane, ["first", "second"])
    tokens = []
    for _ in range(2):  # no name given: each token gets its own
        created = httpx.post(
            f"{plane.url}/v1/tokens", json={"role": "reviewer"}, headers=plane.headers()
        )
        assert created.status_code == 200, created.text
        tokens.append(created.json())
    assert tokens[0]["name"] != tokens[1]["name"]
    one, two = ({"Authorization": f"Bearer {t['token']}"} for t in tokens)
    leased = [
        httpx.post(f"{plane.url}/v1/review/lease", json={}, headers=h).json()["item"][
            "inference_id"
        ]
        for h in (one, two)
    ]
    assert leased[0] != leased[1]
    taken = httpx.post(f"{plane.url}/v1/review/items/{leased[0]}/approve", json={}, headers=two)
    assert taken.status_code == 409 and "leased to another reviewer" in taken.json()["detail"]

    create_token(plane, "reviewer", "ana")
    again = httpx.post(
        f"{plane.url}/v1/tokens", json={"role": "app", "name": "ana"}, headers=plane.headers()
    )
    assert again.status_code == 409 and "ana" in again.json()["detail"]
