"""Define a task and give it ground truth through the CLI, as an operator would."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.conftest import ControlPlaneProcess


def define_task(plane: ControlPlaneProcess, tmp_path: Path, name: str, **overrides) -> None:
    spec = {
        "name": name,
        "kind": "label",
        "labels": ["yes", "no"],
        "instruction": "Is this message about money?",
        "triggers": {"min_new_examples": overrides.pop("min_new", 100_000)},
        "gate": {
            "mode": "auto",
            "min_eval_size": 5,
            "min_delta": -1.0,
            "regression_tolerance": 1.0,
            **overrides.pop("gate", {}),
        },
        "training": {
            "max_steps": overrides.pop("max_steps", 4),
            "epochs": overrides.pop("epochs", 1.0),
            "replay_budget": 10,
        },
    }
    if "drift_policy" in overrides:
        spec["drift_policy"] = overrides.pop("drift_policy")
    path = tmp_path / f"{name}.yaml"
    path.write_text(json.dumps(spec))  # JSON is YAML
    result = plane.cli("task", "create", "--from-file", str(path), "--replace")
    assert result.returncode == 0, result.stderr


def import_examples(
    plane: ControlPlaneProcess, tmp_path: Path, task: str, count: int = 60, already: int = 0
) -> None:
    data = tmp_path / f"{task}.jsonl"
    data.write_text(
        "\n".join(
            json.dumps(
                {
                    "input": f"note {i}: "
                    + ("wire the money today" if i % 2 else "the meeting moved"),
                    "output": "yes" if i % 2 else "no",
                }
            )
            for i in range(count)
        )
        + "\n"
    )
    assert plane.cli("import", task, "--data", str(data)).returncode == 0
    plane.wait_for(lambda s: s["tasks"].get(task, {}).get("ground_truth") == already + count)


def cycles_of(plane: ControlPlaneProcess, task: str) -> list[dict]:
    return plane.get(f"/v1/cycles?task={task}")


def import_more(plane: ControlPlaneProcess, tmp_path: Path, task: str, stored: int) -> None:
    """Twenty new labelled examples, unlike ``import_examples``'s (a second cycle needs
    ground truth its champion never saw); ``stored``: the task's ground truth before."""
    data = tmp_path / f"{task}-more.jsonl"
    rows = [{"input": f"later {i}: pay the invoice", "output": "yes"} for i in range(20)]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert plane.cli("import", task, "--data", str(data)).returncode == 0
    plane.wait_for(lambda s: s["tasks"][task]["ground_truth"] == stored + 20)
