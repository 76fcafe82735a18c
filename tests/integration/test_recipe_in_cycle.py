"""A cycle runs with the recipe resolved from its data and says what that cost: on a task
with inputs far longer than the automatic sequence length, the cycle's evidence, the CLI and
the adapter's metadata report how many inputs were cut (tiny Llama, real broker and store)."""

from __future__ import annotations

import json

import pytest

from tests.integration.conftest import ControlPlaneProcess
from tests.integration.learning_helpers import cycles_of, define_task
from training.auto_recipe import MAX_AUTO_SEQ_LEN

pytestmark = pytest.mark.integration

LONG = "The quarterly report lists every invoice and payment in detail. " * 60  # ~700 tokens


@pytest.fixture
def plane(model_plane: ControlPlaneProcess) -> ControlPlaneProcess:
    """The shared control plane on the tiny Llama (tests/conftest.py)."""
    return model_plane


def test_a_cycle_on_long_inputs_reports_how_many_were_cut(plane, tmp_path):
    define_task(plane, tmp_path, "reports")
    data = tmp_path / "reports.jsonl"
    rows = [
        {
            "input": f"report {i}: " + (LONG if i % 3 else "short note"),
            "output": "yes" if i % 2 else "no",
        }
        for i in range(60)
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert plane.cli("import", "reports", "--data", str(data)).returncode == 0
    plane.wait_for(lambda s: s["tasks"].get("reports", {}).get("ground_truth") == 60)

    result = plane.cli("cycle", "run", "reports", "--wait")
    assert result.returncode == 0, result.stdout + result.stderr
    cycle = cycles_of(plane, "reports")[0]
    training = cycle["decision"]["evidence"]["training"]
    recipe = training["recipe"]
    assert recipe["max_seq_len"] == MAX_AUTO_SEQ_LEN  # two thirds are long: capped
    # the long inputs were cut, the short ones kept whole
    assert 0 < training["inputs_cut"] < training["measured_examples"]
    assert training["eval_inputs_cut"] > 0
    assert f"inputs cut to fit in {training['inputs_cut']} of" in " ".join(result.stdout.split())

    adapter = plane.home / "adapters" / cycle["adapter_id"]
    metadata = json.loads((adapter / "metadata.json").read_text())
    assert metadata["recipe"] == recipe
    assert metadata["data"]["inputs_cut"] == training["inputs_cut"]
