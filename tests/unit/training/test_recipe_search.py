"""The learning-rate search: its split discipline (no eval example ever reaches a trial's
training or the choice of the winner), its trigger rule, its budget and its choice."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, replace

import pytest

from schemas.tasks import TrainingRecipe
from tests.model_fixtures import tiny_recipe
from training.auto_recipe import ResolvedRecipe
from training.cycle_worker import adopt_trial, cycle_data, tune
from training.recipe_search import (
    AUTOMATIC,
    BUDGET,
    LEARNING_RATE_FACTORS,
    MAX_DEV_EXAMPLES,
    PastCycle,
    SearchPlan,
    Trial,
    choose,
    dev_split,
    past_cycle,
    plan_search,
    search,
    trial_recipes,
)


def snapshot_rows(n: int) -> list[dict]:
    """Rows as a snapshot holds them: every fifth example in the gate's eval split."""
    return [
        {
            "id": f"inf-{i}",
            "input": f"message {i}",
            "output": "yes" if i % 3 else "no",
            "split": "eval" if i % 5 == 0 else "train",
            "is_new": i % 2 == 0,
            "is_regression": False,
        }
        for i in range(n)
    ]


class RecordingTrials:
    """A trial runner that records which examples each trial trained on and was scored on,
    and scores trials by a fixed table (the real one trains an adapter)."""

    def __init__(self, dev_scores: Sequence[float]) -> None:
        self.dev_scores = list(dev_scores)
        self.fit_ids: list[set[str]] = []
        self.dev_ids: list[set[str]] = []

    def __call__(self, recipe: ResolvedRecipe, fit: Sequence[dict], dev: Sequence[dict]) -> Trial:
        self.fit_ids.append({e["id"] for e in fit})
        self.dev_ids.append({e["id"] for e in dev})
        k = len(self.fit_ids) - 1
        return Trial(recipe.learning_rate, recipe.steps, self.dev_scores[k], 1.0, 2.0, 1.0, 0.1)


def test_no_eval_example_reaches_a_trials_training_or_the_choice_of_the_winner():
    rows = snapshot_rows(300)
    data = cycle_data(rows, TrainingRecipe(replay_budget=1000))
    eval_ids = {r["id"] for r in rows if r["split"] == "eval"}
    train_ids = {r["id"] for r in rows if r["split"] == "train"}
    trials = RecordingTrials([0.5, 0.7])

    settings, evidence = tune(
        tiny_recipe(),
        SearchPlan(True, "first cycle"),
        data.examples,
        metric="exact_match",
        run_trial=trials,
    )

    assert len(trials.fit_ids) == len(LEARNING_RATE_FACTORS)
    for fit, dev in zip(trials.fit_ids, trials.dev_ids, strict=True):
        assert not fit & eval_ids and not dev & eval_ids  # training and selection alike
        assert dev <= train_ids and fit <= train_ids  # dev is carved from the training split
        assert not fit & dev  # a trial is never scored on what it trained on
        assert fit | dev == {e["id"] for e in data.examples}
    assert evidence["dev_examples"] == len(trials.dev_ids[0]) > 0
    assert [t["dev_metric"] for t in evidence["trials"]] == [0.5, 0.7]
    assert settings.learning_rate == evidence["trials"][1]["learning_rate"]  # the best on dev


def test_the_dev_split_is_deterministic_whatever_the_order_and_capped():
    examples = [{"id": f"e{i}"} for i in range(1000)]
    fit, dev = dev_split(examples)
    _, dev_again = dev_split(list(reversed(examples)))
    assert {e["id"] for e in dev} == {e["id"] for e in dev_again}
    assert len(dev) == MAX_DEV_EXAMPLES and len(fit) == 1000 - MAX_DEV_EXAMPLES


def test_too_few_training_examples_skip_the_search_and_say_so():
    trials = RecordingTrials([0.5, 0.5, 0.5])
    evidence = search(
        [{"id": f"e{i}"} for i in range(20)], tiny_recipe(), metric="exact_match", run_trial=trials
    )
    assert not evidence["ran"] and evidence["winner"] is None and not trials.fit_ids
    assert "too few" in evidence["skipped"]


def test_each_trial_is_the_cycles_own_run_at_another_rate():
    recipe = tiny_recipe(max_steps=90)
    candidates = trial_recipes(recipe)
    # the budget: as many training runs as trials, each no longer than the cycle's own
    assert len(candidates) == len(LEARNING_RATE_FACTORS) and str(len(candidates)) in BUDGET
    for candidate in candidates:  # what is compared is what the gate would get
        assert replace(candidate, learning_rate=recipe.learning_rate) == recipe
    rates = sorted(c.learning_rate for c in candidates)
    assert len(set(rates)) == len(rates) and recipe.learning_rate in rates


@pytest.mark.parametrize(
    ("metric", "scores", "trained"),
    [
        ("exact_match", [1.0, 1.0], 1),  # every dev example right: nothing left to beat
        ("exact_match", [0.98, 1.0], 2),  # one wrong: the other rate may still win
        ("token_f1", [1.0, 1.0], 1),
        ("nll", [0.0, 0.0], 2),  # a loss has no best possible value
    ],
)
def test_a_trial_perfect_on_dev_ends_the_search(metric, scores, trained):
    trials = RecordingTrials(scores)
    examples = [{"id": f"e{i}"} for i in range(200)]
    evidence = search(examples, tiny_recipe(), metric=metric, run_trial=trials)
    assert len(trials.fit_ids) == len(evidence["trials"]) == trained
    assert evidence["winner_trial"] == AUTOMATIC
    assert ("stopped_early" in evidence) == (trained < len(LEARNING_RATE_FACTORS))
    if trained == 1:
        assert "all 30 development examples right" in evidence["stopped_early"]


def cycle(n: int, verdict: str, *, searched: bool = False) -> PastCycle:
    tuned = {"learning_rate": 3e-3} if searched else None
    return PastCycle(f"cyc-{n}", verdict, searched, tuned)


def test_the_first_cycle_searches():
    plan = plan_search([], TrainingRecipe())
    assert plan.search and "first cycle" in plan.reason


def test_later_cycles_reuse_the_winner():
    plan = plan_search([cycle(1, "promote", searched=True), cycle(2, "promote")], TrainingRecipe())
    assert not plan.search
    assert plan.tuned == {"learning_rate": 3e-3} and plan.tuned_in == "cyc-1"


def test_one_rejection_reuses_and_two_in_a_row_search_again():
    history = [cycle(1, "reject", searched=True)]
    assert not plan_search(history, TrainingRecipe()).search
    history.append(cycle(2, "reject"))
    assert plan_search(history, TrainingRecipe()).search
    # the new search starts the count afresh
    history.append(cycle(3, "reject", searched=True))
    assert not plan_search(history, TrainingRecipe()).search
    history.append(cycle(4, "promote"))
    history.append(cycle(5, "reject"))
    assert not plan_search(history, TrainingRecipe()).search  # not in a row


def test_a_task_that_sets_its_learning_rate_is_not_searched():
    plan = plan_search([], TrainingRecipe(learning_rate=5e-4))
    assert not plan.search and "sets its learning rate" in plan.reason


def test_a_stored_cycle_is_read_back_as_history():
    record = {
        "cycle_id": "cyc-1",
        "verdict": "reject",
        "decision": {
            "evidence": {"training": {"search": {"ran": True, "winner": {"learning_rate": 1e-3}}}}
        },
    }
    assert past_cycle(record) == PastCycle("cyc-1", "reject", True, {"learning_rate": 1e-3})
    assert not past_cycle({"cycle_id": "cyc-0", "verdict": "promote", "decision": None}).searched


@pytest.mark.parametrize(
    ("metric", "scores", "nlls", "best"),
    [
        ("exact_match", [0.5, 0.7], [1, 1], 1),
        ("exact_match", [0.6, 0.6], [0.7, 0.9], 0),  # tie: lower dev loss
        ("exact_match", [0.6, 0.6], [0.8, 0.7], 1),
        ("exact_match", [0.6, 0.6], [0.7, 0.7], AUTOMATIC),  # full tie: the automatic rate
        ("exact_match", [0.80, 0.82], [0.29, 0.31], 0),  # one example of 50 apart: a tie
        ("exact_match", [0.80, 0.84], [0.29, 0.31], 1),  # two examples apart: the metric
        ("token_f1", [0.500, 0.515], [2.0, 2.1], 0),
        ("nll", [0.9, 0.4], [0.9, 0.4], 1),  # lower is better
    ],
)
def test_the_winner_is_the_best_on_dev_where_more_than_one_example_tells_them_apart(
    metric, scores, nlls, best
):
    pairs = enumerate(zip(scores, nlls, strict=True))
    trials = [Trial(0.1 * k, 3, s, n, 1.0, 1.0, 0.1) for k, (s, n) in pairs]
    assert choose(trials, metric, dev_examples=50) == best


def test_the_winning_trial_is_the_candidate_with_the_cycles_metadata(tmp_path):
    adapters_dir = tmp_path / "adapters"
    trials_dir = adapters_dir / ".trials-x"  # as the worker makes it
    for name in ("aaa", "bbb"):
        (trials_dir / name).mkdir(parents=True)
        (trials_dir / name / "adapter_model.safetensors").write_text(name)
    trials = [
        asdict(Trial(1e-3, 30, 0.4, 1.0, 2.0, 0.9, 5.0, [[30, 0.9]], adapter_id="aaa")),
        asdict(Trial(3e-3, 30, 0.8, 0.8, 2.0, 0.5, 6.0, [[30, 0.5]], adapter_id="bbb")),
    ]
    evidence = {"trials": trials, "winner_trial": 1, "fit_examples": 85}
    settings = replace(tiny_recipe(), learning_rate=3e-3)

    adapter_id, path, trained = adopt_trial(
        evidence, trials_dir, adapters_dir, settings, {"task": "memos", "snapshot_id": "s1"}
    )

    assert adapter_id == "bbb" and path == adapters_dir / "bbb"
    assert (path / "adapter_model.safetensors").read_text() == "bbb"
    metadata = json.loads((path / "metadata.json").read_text())
    assert metadata["task"] == "memos" and metadata["snapshot_id"] == "s1"
    assert metadata["recipe"]["learning_rate"] == 3e-3  # the recipe it was trained with
    assert metadata["training"] == {
        "steps": 30,
        "examples": 85,  # the fit split: dev examples did not train it
        "first_loss": 2.0,
        "last_loss": 0.5,
        "seconds": 6.0,
    }
    assert trained["loss_curve"] == [[30, 0.5]]
    assert not (adapters_dir / "aaa").exists()  # a losing trial never reaches the store
