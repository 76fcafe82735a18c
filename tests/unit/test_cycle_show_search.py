"""`flywheel cycle show` prints the learning-rate search as an operator reads it: why it ran,
every trial, the chosen one, and why it stopped before trying every rate."""

from __future__ import annotations

import io

from rich.console import Console

from services.cli import learning
from tests.model_fixtures import tiny_recipe
from training.recipe_search import Trial, search


def test_a_search_stopped_by_a_perfect_trial_says_so_beside_its_one_trial(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(learning, "console", Console(file=out, width=200))
    evidence = search(
        [{"id": f"e{i}"} for i in range(200)],
        tiny_recipe(),
        metric="exact_match",
        run_trial=lambda recipe, fit, dev: Trial(recipe.learning_rate, 30, 1.0, 0.1, 2.0, 0.1, 5),
    )
    evidence["reason"] = "first cycle of the task: no tuned configuration yet"

    learning._print_search(evidence)

    text = out.getvalue()
    assert "stopped early: the trial at" in text and "answered all 30 development" in text
    assert text.count("(chosen)") == 1 and len(evidence["trials"]) == 1
