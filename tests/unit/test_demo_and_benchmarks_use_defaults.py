"""What the demo and the benchmarks show is what a user gets: none of their tasks sets a
learning rate, steps or epochs of its own (issue 11: defaults are the product)."""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

from schemas.tasks import TaskDefinition

ROOT = Path(__file__).resolve().parents[2]
OWN_SCHEDULE = {"learning_rate", "max_steps", "epochs"}
# The measurement behind the automatic learning rate: setting rates is what it is for.
MEASURES_THE_DEFAULT = {"default_learning_rate.py"}


@pytest.fixture(autouse=True)
def benchmarks_importable(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # they import their _common
    yield
    sys.modules.pop("_common", None)


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("services.demo", "SPAM_TASK"),
        ("services.demo", "FAQ_TASK"),
        ("_common", "QUICK_SPAM_TASK"),
        ("feedback_to_champion", "TASK"),
        ("cycle_scaling", "TASK"),
    ],
)
def test_every_demo_and_benchmark_task_trains_with_the_automatic_schedule(module, name):
    task = getattr(importlib.import_module(module), name)
    recipe = (
        TaskDefinition.model_validate(task).training if isinstance(task, dict) else task.training
    )
    assert {field: getattr(recipe, field) for field in OWN_SCHEDULE} == dict.fromkeys(
        OWN_SCHEDULE, "auto"
    )


def test_no_demo_or_benchmark_source_writes_its_own_schedule_into_a_task():
    sources = [ROOT / "services" / "demo.py", *sorted((ROOT / "benchmarks").glob("*.py"))]
    offenders = []
    for path in sources:
        if path.name in MEASURES_THE_DEFAULT:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Dict):
                keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
                offenders += [f"{path.name}: {key}" for key in sorted(keys & OWN_SCHEDULE)]
    assert offenders == []
