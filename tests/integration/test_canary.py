"""Canary rollout end to end: a real broker, control plane, faust monitor, inference server
and tiny model. A canary drawing more thumbs-down is rolled back automatically and the
servers stop using it; one with equal rates is promoted at the end of its duration."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.broker import EmbeddedBroker
from tests.integration.learning_helpers import define_task, import_examples
from tests.integration.live_helpers import live_plane, traffic
from tests.processes import ControlPlaneProcess, InferenceServerProcess, create_token

pytestmark = pytest.mark.integration


@pytest.fixture
def plane(
    home: Path, broker: EmbeddedBroker, tiny_model_dir: Path
) -> Iterator[ControlPlaneProcess]:
    with live_plane(home, broker.bootstrap, tiny_model_dir, 5) as plane:
        yield plane


def _canary_of(plane: ControlPlaneProcess, tmp_path: Path, task: str, **policy: object) -> str:
    """Train a candidate that passes the gate under a canary policy; its adapter id."""
    define_task(plane, tmp_path, task, gate={"canary": policy})
    import_examples(plane, tmp_path, task)
    result = plane.cli("cycle", "run", task, "--wait")
    assert result.returncode == 0, result.stdout + result.stderr
    status = plane.get(f"/v1/tasks/{task}/canary")
    assert status["canary"] is not None, status
    assert plane.get(f"/v1/tasks/{task}")["champion"] is None  # still the base model
    return str(status["canary"]["adapter_id"])


def _ask(server: InferenceServerProcess, token: str, user: str) -> str | None:
    response = httpx.post(
        f"{server.url}/v1/generate",
        headers={"Authorization": f"Bearer {token}"},
        json={"task": "money", "input": "wire the money", "user": user},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.json()["adapter_id"]


def test_a_worse_canary_is_rolled_back_and_servers_stop_using_it(
    plane: ControlPlaneProcess, tmp_path: Path
) -> None:
    canary = _canary_of(plane, tmp_path, "money", fraction=0.5, min_events=40, max_duration_s=600)
    server = InferenceServerProcess(plane)
    server.start()
    try:
        plane.wait_until(server.health, lambda h: "money" in h.get("canaries", {}), 30)
        token = create_token(plane, "app")
        versions = {f"user-{i}": _ask(server, token, f"user-{i}") for i in range(16)}
        assert set(versions.values()) == {canary, None}  # both serve, split by caller
        assert all(_ask(server, token, user) == versions[user] for user in list(versions)[:6])

        shown = plane.cli("canary", "status", "money", "--json")
        assert json.loads(shown.stdout)["canary"]["adapter_id"] == canary, shown.stderr
        assert "no running canary" not in plane.cli("canary", "status", "money").stdout
        reviewer = create_token(plane, "reviewer")
        refused = plane.post("/v1/tasks/money/canary/end", {"outcome": "promote"}, reviewer)
        assert refused.status_code == 403

        traffic(plane.bootstrap, "money", canary, answers=150, thumbs_down=60)  # 40%
        traffic(plane.bootstrap, "money", None, answers=150, thumbs_down=15)  # 10%
        ended = plane.wait_until(
            lambda: plane.get("/v1/tasks/money/canary"), lambda s: s["canary"] is None, 90
        )
        (last,) = ended["history"]
        assert (last["outcome"], last["actor"]) == ("rollback", "live-guard")
        evidence = last["evidence"]
        assert evidence["low"] > 0 and evidence["candidate"]["rate"] > evidence["reference"]["rate"]
        assert plane.get("/v1/tasks/money")["champion"] is None
        audit = plane.cli("audit", "--task", "money").stdout
        assert "canary:rollback" in audit

        plane.wait_until(server.health, lambda h: h.get("canaries") == {}, 30)
        assert {_ask(server, token, user) for user in versions} == {None}
    finally:
        server.stop()


def test_a_canary_with_equal_rates_is_promoted_at_the_end_of_its_duration(
    plane: ControlPlaneProcess, tmp_path: Path
) -> None:
    canary = _canary_of(plane, tmp_path, "money", fraction=0.3, min_events=20, max_duration_s=30)
    traffic(plane.bootstrap, "money", canary, answers=60, thumbs_down=6)
    traffic(plane.bootstrap, "money", None, answers=60, thumbs_down=6)
    decided = plane.wait_until(
        lambda: plane.get("/v1/tasks/money/canary"),
        lambda s: s["decision"] is not None and s["decision"]["candidate"]["n"] == 60,
        60,
    )
    assert decided["canary"] is not None, "decided before its duration"
    ended = plane.wait_until(
        lambda: plane.get("/v1/tasks/money/canary"), lambda s: s["canary"] is None, 60
    )
    (last,) = ended["history"]
    assert last["outcome"] == "promote" and "longest duration" in last["evidence"]["reason"]
    assert plane.get("/v1/tasks/money")["champion"] == canary


def test_a_champion_whose_negative_feedback_jumps_raises_an_alert(
    plane: ControlPlaneProcess, tmp_path: Path
) -> None:
    define_task(plane, tmp_path, "money")  # no canary: the gate promotes at once
    import_examples(plane, tmp_path, "money")
    assert plane.cli("cycle", "run", "money", "--wait").returncode == 0
    champion = plane.get("/v1/tasks/money")["champion"]
    assert champion is not None
    traffic(plane.bootstrap, "money", champion, answers=60, thumbs_down=6)  # its first window
    time.sleep(5 - time.time() % 5 + 0.3)  # the next 5 s window
    traffic(plane.bootstrap, "money", champion, answers=60, thumbs_down=36)
    status = plane.wait_until(plane.status, lambda s: s.get("live_alerts"), 60)
    alert = status["live_alerts"][0]
    assert (alert["task"], alert["adapter_id"], alert["action"]) == ("money", champion, "alert")
    assert alert["baseline"] == "first_window" and "worse" in alert["reason"]
    assert "drift alert" in plane.cli("status").stdout
    assert "drift:alert" in plane.cli("audit", "--task", "money").stdout
    assert plane.get("/v1/tasks/money")["champion"] == champion  # policy alert: no rollback
