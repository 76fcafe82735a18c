"""The learning-rate search through the running control plane (tiny Llama, real broker and
store): a task's first cycle tries its trials on a development split and keeps them in the
evidence; the gate rejects, and `flywheel cycle show` says why; the next cycle reuses the
winner without searching."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.conftest import ControlPlaneProcess
from tests.integration.learning_helpers import cycles_of, define_task
from training.recipe_search import LEARNING_RATE_FACTORS, dev_checkpoints

pytestmark = pytest.mark.integration


@pytest.fixture
def plane(model_plane: ControlPlaneProcess) -> ControlPlaneProcess:
    """The shared control plane on the tiny Llama (tests/conftest.py)."""
    return model_plane


def import_batch(plane: ControlPlaneProcess, tmp_path: Path, start: int, count: int) -> None:
    data = tmp_path / f"batch-{start}.jsonl"
    rows = [
        {
            "input": f"memo {i}: " + ("wire the money today" if i % 2 else "the meeting moved"),
            "output": "yes" if i % 2 else "no",
        }
        for i in range(start, start + count)
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert plane.cli("import", "memos", "--data", str(data)).returncode == 0
    plane.wait_for(lambda s: s["tasks"].get("memos", {}).get("ground_truth") == start + count)


def test_first_cycle_searches_is_explained_and_the_next_reuses_the_winner(plane, tmp_path):
    # an unreachable gate: every candidate is rejected, so the explanation is shown
    define_task(plane, tmp_path, "memos", gate={"min_delta": 1.0}, max_steps=6)
    import_batch(plane, tmp_path, 0, 100)

    first = plane.cli("cycle", "run", "memos", "--wait")
    assert first.returncode == 0, first.stdout + first.stderr
    cycle = cycles_of(plane, "memos")[0]
    assert cycle["verdict"] == "reject"
    evidence = cycle["decision"]["evidence"]
    search = evidence["training"]["search"]
    assert search["ran"] and "first cycle" in search["reason"]
    assert len(search["trials"]) == len(LEARNING_RATE_FACTORS)
    assert {t["learning_rate"] for t in search["trials"]} >= {search["winner"]["learning_rate"]}
    assert 0 < search["dev_examples"] < search["fit_examples"]
    for trial in search["trials"]:  # the development loss as each trial trained
        assert [step for step, _ in trial["dev_curve"]] == sorted(dev_checkpoints(trial["steps"]))
        assert all(loss > 0 for _, loss in trial["dev_curve"])
        assert trial["dev_curve"][-1][1] == pytest.approx(trial["dev_nll"], rel=0.2)
    assert evidence["training"]["recipe"]["learning_rate"] == search["winner"]["learning_rate"]
    assert evidence["training"]["loss_curve"][-1][0] == evidence["training"]["steps"]
    # the winning trial is the candidate the gate scored; the others left nothing behind
    winner = search["trials"][search["winner_trial"]]
    assert cycle["adapter_id"] == winner["adapter_id"]
    assert all(t["steps"] == evidence["training"]["steps"] for t in search["trials"])
    stored = {p.name for p in (plane.home / "adapters").iterdir()}
    assert cycle["adapter_id"] in stored and not any(n.startswith(".trials-") for n in stored)
    assert not {t["adapter_id"] for t in search["trials"]} - {cycle["adapter_id"]} & stored
    assert evidence["diagnosis"], "a rejected cycle says why"
    assert "why it failed:" in first.stdout

    shown = plane.cli("cycle", "show", cycle["cycle_id"])
    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())
    assert "why it failed:" in text and evidence["diagnosis"][0][:40] in text
    assert "learning-rate search: first cycle" in text and "(chosen)" in text
    assert "training loss over" in text
    last = search["trials"][0]["dev_curve"][-1]
    assert f"{last[1]:.3f} @{last[0]}" in text  # dev loss by step, per trial
    missing = plane.cli("cycle", "show", "cyc-nope")
    assert missing.returncode == 1 and "no cycle cyc-nope" in missing.stderr

    import_batch(plane, tmp_path, 100, 40)
    second = plane.cli("cycle", "run", "memos", "--wait")
    assert second.returncode == 0, second.stdout + second.stderr
    latest = cycles_of(plane, "memos")[0]
    assert latest["cycle_id"] != cycle["cycle_id"]
    training = latest["decision"]["evidence"]["training"]
    assert not training["search"]["ran"]  # one rejection: the winner is reused
    assert training["search"]["tuned_in"] == cycle["cycle_id"]
    assert training["recipe"]["learning_rate"] == search["winner"]["learning_rate"]
