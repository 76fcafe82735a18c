"""The task zoo benchmark's own run, on the tiny Llama and a made-up task: it drives the
whole stack as a user would (task create, import, two cycles, evaluate), runs the baseline on
the same examples, and its summary reports what the store holds; the learning curve is drawn."""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb
import pytest

from benchmarks.zoo import ZooTask

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def money_task() -> ZooTask:
    def example(i: int) -> dict[str, str]:
        money = i % 3 == 0
        text = "send cash to my account now" if money else "see you at lunch tomorrow"
        return {"input": f"message {i}: {text}", "output": "yes" if money else "no"}

    return ZooTask(
        name="money",
        kind="label",
        labels=("yes", "no"),
        instruction="Is this message about money?",
        train=[example(i) for i in range(60)],
        more=[example(i) for i in range(60, 90)],
        held_out=[example(i) for i in range(200, 230)],
        source="made up",
    )


class StoppedStack:
    def stop(self) -> None:
        pass


@pytest.fixture
def task_zoo(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import task_zoo

    yield task_zoo
    sys.modules.pop("task_zoo", None)
    sys.modules.pop("_common", None)


def test_a_zoo_run_reports_each_cycle_as_the_store_decided_it(task_zoo, tiny_model_dir, tmp_path):
    home = tmp_path / "home"
    stack = task_zoo.Stack(home, {"FLYWHEEL_BASE_MODEL": str(tiny_model_dir)})
    png = tmp_path / "curve.png"
    rows = tmp_path / "rows"
    summary = task_zoo.run_zoo(
        [money_task()], stack, cycles=2, curve_png=png, curve_sizes=(40,), results_dir=rows
    )

    row = summary["tasks"]["money"]
    assert summary["n_tasks"] == 1
    assert {"kind", "metric", "base", "cycle1", "cycle1_ci_low", "cycle2", "baseline"} <= set(row)
    assert row["kind"] == "label" and row["metric"] == "exact_match"
    for key in ("base", "cycle1", "cycle2", "baseline"):
        assert 0.0 <= row[key] <= 1.0, (key, row)
    assert row["cycle_s"] > 0 and row["baseline_s"] > 0
    assert row["baseline_detail"]["n_train"] == 60  # the same 60 examples Flywheel was given
    promoted = row["cycle1_detail"]["verdict"] == "promote" and row["cycle1_ci_low"] > 0
    assert summary["tasks_improved"] == int(promoted)
    # The curve: one more cycle on the first 40 examples, its candidate scored and drawn.
    assert list(summary["curves"]["money"]) == ["40"]
    assert 0.0 <= summary["curves"]["money"]["40"] <= 1.0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    db = duckdb.connect(str(home / "flywheel.duckdb"), read_only=True)
    verdicts = db.execute(
        "SELECT verdict, adapter_id FROM cycles WHERE task = 'money' ORDER BY started_at"
    ).fetchall()
    examples = db.execute("SELECT count(*) FROM ground_truth WHERE task = 'money'").fetchone()
    db.close()
    assert [v for v, _ in verdicts] == [
        row["cycle1_detail"]["verdict"],
        row["cycle2_detail"]["verdict"],
    ]
    assert verdicts[0][1] == row["cycle1_detail"]["adapter_id"]
    assert examples[0] == 90  # the 30 more arrived before cycle 2; held-out never did

    # A later sitting reuses the kept row instead of running the task again (this stack
    # can only be stopped: any use of it would fail).
    resumed = task_zoo.run_zoo(
        [money_task()], StoppedStack(), cycles=2, curve_png=None, results_dir=rows
    )
    assert resumed["tasks"]["money"] == row and resumed["tasks_wall_s"] == row["task_s"] > 0


def test_the_learning_curve_is_drawn_per_task_with_the_base_model_beside_it(task_zoo, tmp_path):
    png = tmp_path / "curve.png"
    task_zoo.draw_curves(
        {"spam": {50: 0.7, 100: 0.8, 400: 0.9}, "faq": {50: 0.2, 100: 0.25}},
        {"spam": 0.6, "faq": 0.1},
        png,
    )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
