"""``flywheel forget`` against a real control plane (tiny model, real broker, real DuckDB):
a user's text is gone from every byte under FLYWHEEL_HOME, running and stopped; a re-sent
event is not stored again; adapters that learned from it are tainted, and each erasure
policy does what it says."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.integration.conftest import ControlPlaneProcess, stored
from tests.integration.learning_helpers import cycles_of, import_examples

pytestmark = pytest.mark.integration


@pytest.fixture
def plane(learning_plane: ControlPlaneProcess) -> ControlPlaneProcess:
    return learning_plane


def define(plane: ControlPlaneProcess, tmp_path: Path, name: str, policy: str) -> None:
    spec = {
        "name": name,
        "kind": "label",
        "labels": ["yes", "no"],
        "instruction": "Is this message about money?",
        "triggers": {"min_new_examples": 100_000},
        "gate": {"mode": "auto", "min_eval_size": 5, "min_delta": -1.0, "regression_tolerance": 1},
        "training": {"max_steps": 4, "epochs": 1.0, "replay_budget": 10},
        "erasure_policy": policy,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(json.dumps(spec))
    result = plane.cli("task", "create", "--from-file", str(path), "--replace")
    assert result.returncode == 0, result.stderr


def user_events(task: str, user: str, marker: str, count: int = 4) -> list[dict]:
    """A user's inferences (their text carries ``marker``), each accepted, one corrected."""
    now = datetime.now(UTC).isoformat()
    events: list[dict] = []
    for i in range(count):
        inference_id = f"{task}-{user}-{i}"
        events.append(
            {
                "type": "inference",
                "event_id": inference_id,
                "occurred_at": now,
                "task": task,
                "input": f"{marker} asks to wire the money, note {i}",
                "output": "yes",
                "base_model": "tiny",
                "metadata": {"user": user},
            }
        )
        events.append(
            {
                "type": "feedback",
                "event_id": f"fb-{inference_id}",
                "occurred_at": now,
                "task": task,
                "inference_id": inference_id,
                "signal": "accepted",
            }
        )
    events.append(
        {
            "type": "correction",
            "event_id": f"co-{task}-{user}",
            "occurred_at": now,
            "task": task,
            "inference_id": f"{task}-{user}-0",
            "corrected_output": f"no, says {marker}",
            "reviewer": "anyone",
        }
    )
    return events


def send(plane: ControlPlaneProcess, events: list[dict]) -> None:
    response = plane.post("/v1/events", {"events": events})
    assert response.status_code == 200 and response.json()["rejected"] == 0, response.text


def files_holding(home: Path, text: str) -> list[str]:
    """Every file under ``home`` whose bytes contain ``text``."""
    needle = text.encode()
    return sorted(
        str(path.relative_to(home))
        for path in home.rglob("*")
        if path.is_file() and needle in path.read_bytes()
    )


def forget(plane: ControlPlaneProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """``flywheel forget`` as an operator runs it, whether or not the plane is up."""
    return subprocess.run(
        [sys.executable, "-m", "services.cli.main", "forget", *args],
        env=plane.env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_forget_leaves_no_byte_of_a_user_anywhere_under_home(plane, tmp_path):
    marker, offline_marker = "Zyxwvut-Adele-4711", "Qqqrrs-Bruno-4712"
    define(plane, tmp_path, "money", policy="rollback")
    import_examples(plane, tmp_path, "money", count=40)
    send(plane, user_events("money", "4711", marker) + user_events("money", "4712", offline_marker))
    plane.wait_for(lambda s: s["tasks"]["money"]["ground_truth"] == 48)
    trained = plane.cli("cycle", "run", "money", "--wait")
    assert "verdict promote" in trained.stdout, trained.stdout + trained.stderr
    champion = plane.get("/v1/tasks/money")["champion"]
    assert champion is not None
    assert files_holding(plane.home, marker)  # the search sees the text where it is

    erased = forget(plane, "--metadata", "user=4711")

    assert erased.returncode == 0, erased.stderr
    assert "erased (metadata user=4711): 4 inference, 4 feedback, 1 correction" in erased.stdout
    assert f"champion {champion} learned from erased data; rolled back to the base" in (
        erased.stdout
    )
    assert files_holding(plane.home, marker) == []  # running: DuckDB file, WAL, snapshots...
    assert plane.get("/v1/tasks/money")["champion"] is None
    assert [a["tainted"] for a in plane.get("/v1/adapters?task=money")] == [True]
    entry = next(e for e in plane.get("/v1/audit") if e["action"] == "forget")
    assert entry["actor"] == "local-cli" and "user=4711" in json.dumps(entry)
    assert marker not in json.dumps(plane.get("/v1/audit"))

    # The same events come back (a replay, an SDK spool re-sent): none is stored again.
    before = plane.status()
    send(plane, [*user_events("money", "4711", marker), *user_events("other", "7", "sentinel")])
    after = plane.wait_for(lambda s: "other" in s["tasks"])
    assert stored(after, "inference") == stored(before, "inference") + 4  # the sentinel's
    assert after["tasks"]["money"]["ground_truth"] == 44
    assert files_holding(plane.home, marker) == []

    assert plane.stop() == 0
    assert files_holding(plane.home, marker) == []  # stopped: nothing surfaced at shutdown

    offline = forget(plane, "--metadata", "user=4712")  # the control plane is down
    assert offline.returncode == 0, offline.stderr
    assert "4 inference, 4 feedback, 1 correction" in offline.stdout
    assert files_holding(plane.home, offline_marker) == []
    assert plane.query("SELECT count(*) FROM inferences WHERE task = 'money'") == [(40,)]


def test_retrain_policy_starts_a_cycle_on_what_is_left(plane, tmp_path):
    define(plane, tmp_path, "money", policy="retrain")
    import_examples(plane, tmp_path, "money", count=40)
    send(plane, user_events("money", "4711", "Zyxwvut-Adele-4711"))
    plane.wait_for(lambda s: s["tasks"]["money"]["ground_truth"] == 44)
    assert "verdict promote" in plane.cli("cycle", "run", "money", "--wait").stdout
    tainted = plane.get("/v1/tasks/money")["champion"]

    response = plane.post("/v1/erasures", {"metadata": {"user": "4711"}})

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["adapters_tainted"] == [tainted]
    assert answer["policies"][0]["action"] == "retrain_owed"
    assert answer["retraining_waiting"] == []  # started, by this request or the scheduler
    assert plane.get("/v1/tasks/money")["champion"] == tainted  # live until the gate decides
    cycle = plane.wait_until(
        lambda: cycles_of(plane, "money")[0],
        lambda c: c["trigger"] == "erasure" and c["state"] in ("decided", "failed"),
    )
    assert cycle["state"] == "decided", cycle
    retrained = next(
        a for a in plane.get("/v1/adapters?task=money") if a["adapter_id"] == cycle["adapter_id"]
    )
    assert retrained["parent_adapter"] is None  # not warm-started from the tainted weights
    assert not retrained["tainted"]
    assert plane.get("/v1/tasks/money")["champion"] == cycle["adapter_id"]  # the gate promoted
    snapshot = plane.home / "snapshots" / cycle["snapshot_id"] / "examples.parquet"
    assert b"Zyxwvut" not in snapshot.read_bytes()


def test_a_bad_erasure_request_says_what_to_send(plane):
    both = plane.post("/v1/erasures", {"inference_id": "a", "event_id": "b"})
    assert both.status_code == 422 and "exactly one" in both.text
    usage = forget(plane)
    assert usage.returncode == 2 and "exactly one of --metadata" in usage.stderr
