"""Which rows an earlier sitting of the task zoo kept are reused, and which run again."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from benchmarks.zoo import ZooTask

BENCHMARKS = Path(__file__).resolve().parents[3] / "benchmarks"


@pytest.fixture
def saved_rows(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # the script imports its sibling _common
    import task_zoo

    yield task_zoo.saved_rows
    sys.modules.pop("task_zoo", None)
    sys.modules.pop("_common", None)


def text_task(name: str) -> ZooTask:
    example = {"input": "thee", "output": "you"}
    return ZooTask(name, "text", None, "Rewrite it.", [example], [], [example], "made up")


def test_a_row_is_reused_only_with_the_same_cycles_and_todays_default_metric(tmp_path, saved_rows):
    rows = {
        "kept": {"metric": "token_f1", "cycles": 2, "base": 0.2},
        "one-cycle": {"metric": "token_f1", "cycles": 1, "base": 0.2},
        "old-default": {"metric": "chrf", "cycles": 2, "base": 0.25},
    }
    for name, row in rows.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(row))
    tasks = [text_task(name) for name in (*rows, "never-run")]
    assert saved_rows(tmp_path, tasks, cycles=2) == {"kept": rows["kept"]}
