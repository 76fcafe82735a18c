"""The learning loop end to end on a tiny random Llama: cycles, the gate, the registry, the
scheduler, a killed training process, all through the running control plane and its CLI."""

from __future__ import annotations

import json
import time

import pytest

from schemas.topics import PROMOTIONS
from tests.integration.conftest import ControlPlaneProcess
from tests.integration.learning_helpers import cycles_of, define_task, import_examples
from tests.integration.test_capture_paths import read_topic

pytestmark = pytest.mark.integration


@pytest.fixture
def plane(learning_plane: ControlPlaneProcess) -> ControlPlaneProcess:
    return learning_plane


def test_cycle_promotes_registers_publishes_and_rolls_back(plane, tmp_path):
    define_task(plane, tmp_path, "money")
    import_examples(plane, tmp_path, "money")
    result = plane.cli("cycle", "run", "money", "--wait")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verdict promote" in result.stdout

    task = plane.get("/v1/tasks/money")
    adapters = plane.get("/v1/adapters?task=money")
    assert len(adapters) == 1 and adapters[0]["champion"]
    assert task["champion"] == adapters[0]["adapter_id"]
    assert task["champion_history"][-1]["action"] == "promote"
    cycle = cycles_of(plane, "money")[0]
    assert cycle["state"] == "decided" and cycle["snapshot_id"] == adapters[0]["snapshot_id"]
    assert cycle["decision"]["evidence"]["eval"]["n"] >= 5
    adapter_dir = plane.home / "adapters" / task["champion"]
    assert (adapter_dir / "adapter_model.safetensors").exists()

    shown = plane.cli("quality", "money", "--json")
    assert shown.returncode == 0, shown.stderr
    versions = json.loads(shown.stdout)["quality"]
    assert [(v["adapter_id"], v["verdict"], v["went_live"]) for v in versions] == [
        (task["champion"], "promote", True)
    ]
    assert "promote" in plane.cli("audit", "--task", "money").stdout

    rolled = plane.cli("rollback", "money")
    assert rolled.returncode == 0 and "the base model" in rolled.stdout
    assert plane.get("/v1/tasks/money")["champion"] is None
    held_out = tmp_path / "held-out.jsonl"
    held_out.write_text(
        "\n".join(
            json.dumps(
                {
                    "input": f"memo {i}: pay the invoice" if i % 2 else f"memo {i}: lunch?",
                    "output": "yes" if i % 2 else "no",
                }
            )
            for i in range(12)
        )
    )
    for adapter in ("base", task["champion"]):
        scored = plane.cli("eval", "money", "--data", str(held_out), "--adapter", adapter, "--json")
        assert scored.returncode == 0, scored.stderr
        result = json.loads(scored.stdout)
        assert result["n"] == 12 and 0 <= result["exact_match"] <= 1 and result["nll"] > 0
    weights = adapter_dir / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-64])
    refused = plane.cli("eval", "money", "--data", str(held_out), "--adapter", task["champion"])
    assert refused.returncode == 1 and "corrupted" in refused.stderr

    messages = read_topic(plane.bootstrap, PROMOTIONS, expected=2)
    assert [(m["action"], m["adapter_id"]) for m in messages] == [
        ("promote", task["champion"]),
        ("rollback", None),
    ]


def test_gate_rejects_a_candidate_that_is_not_measurably_better(plane, tmp_path):
    define_task(plane, tmp_path, "strict", gate={"min_delta": 0.99})
    import_examples(plane, tmp_path, "strict")
    result = plane.cli("cycle", "run", "strict", "--wait")
    assert result.returncode == 0, result.stderr
    assert "verdict reject" in result.stdout and "not a measurable improvement" in result.stdout
    assert plane.get("/v1/tasks/strict")["champion"] is None
    assert plane.cli("adapters", "list", "--task", "strict").returncode == 0


def test_scheduler_starts_one_cycle_when_enough_ground_truth_arrives(plane, tmp_path):
    define_task(plane, tmp_path, "auto", min_new=50, max_steps=3)
    import_examples(plane, tmp_path, "auto", count=60)
    cycle = plane.wait_until(lambda: cycles_of(plane, "auto"), lambda cs: len(cs) == 1)[0]
    assert "60 new examples" in cycle["trigger"]
    plane.wait_until(
        lambda: plane.get(f"/v1/cycles/{cycle['cycle_id']}"), lambda c: c["state"] == "decided"
    )
    time.sleep(3)  # several more scheduler ticks: nothing new, so no second cycle
    assert len(cycles_of(plane, "auto")) == 1
