"""Why a cycle failed, in words: ``diagnose`` on crafted evidence, one symptom at a time."""

from __future__ import annotations

from typing import Any

from training.diagnosis import diagnose
from training.lora_recipe import TrainingReport, downsample


def evidence(**changes: Any) -> dict[str, Any]:
    """The evidence of a healthy, promoted cycle; ``changes`` override whole sections."""
    healthy: dict[str, Any] = {
        "metric": "exact_match",
        "policy": {"min_eval_size": 30, "min_delta": 0.0, "regression_tolerance": 0.0},
        "eval": {
            "n": 85,
            "candidate": 0.8,
            "champion": 0.66,
            "delta_mean": 0.14,
            "delta_low": 0.06,
            "delta_high": 0.22,
            "wins": 15,
            "losses": 3,
            "same_answers": 67,
        },
        "regression": {"n": 0},
        "training": {
            "steps": 120,
            "first_loss": 1.9,
            "last_loss": 0.1,
            "chance_loss": 0.35,
            "inputs_cut": 0,
            "eval_inputs_cut": 0,
            "answers_cut": 0,
            "measured_examples": 400,
            "warm_start_from": None,
            "recipe": {"learning_rate": 1e-3, "max_seq_len": 256, "max_answer_tokens": 3},
            "search": {"ran": False, "reason": "reusing"},
        },
    }
    return {**healthy, **changes}


def test_a_healthy_cycle_needs_no_explanation():
    assert diagnose(evidence()) == []


def test_the_issue_s_rejected_cycle_is_explained_in_actionable_words():
    # 79 steps, loss at chance, the same answer as the base model on all 85 eval examples
    seen = evidence(
        eval={
            **evidence()["eval"],
            "candidate": 0.659,
            "champion": 0.659,
            "delta_mean": 0.0,
            "delta_low": 0.0,
            "delta_high": 0.0,
            "wins": 0,
            "losses": 0,
            "same_answers": 85,
        },
        training={
            **evidence()["training"],
            "steps": 79,
            "first_loss": 0.75,
            "last_loss": 0.34,
            "recipe": {"learning_rate": 2e-4},
        },
    )
    reasons = diagnose(seen)
    assert any("never left chance level" in r and "0.340" in r and "0.350" in r for r in reasons)
    assert any("answers like the base model on 85 of 85" in r for r in reasons)
    assert any("learning_rate (it trained at 0.0002)" in r for r in reasons)


def test_a_stalled_text_task_loss_is_named():
    seen = evidence(
        training={
            **evidence()["training"],
            "chance_loss": None,
            "first_loss": 2.0,
            "last_loss": 1.95,
        }
    )
    assert any("barely moved (2.000 → 1.950 over 120 steps)" in r for r in diagnose(seen))


def test_cut_inputs_and_answers_are_counted():
    seen = evidence(
        training={
            **evidence()["training"],
            "inputs_cut": 37,
            "eval_inputs_cut": 9,
            "answers_cut": 4,
        }
    )
    reasons = diagnose(seen)
    assert any(
        "cut to fit 256 tokens in 37 of 400 training examples and 9 eval" in r for r in reasons
    )
    assert any("4 training answers are longer than 3 tokens" in r for r in reasons)


def test_too_few_eval_examples():
    seen = evidence(eval={"n": 12})
    assert any("Only 12 eval examples" in r and "needs 30" in r for r in diagnose(seen))


def test_a_regression_set_that_fell_back():
    seen = evidence(regression={"n": 10, "delta_mean": -0.3, "losses": 3})
    assert any("3 of 10 once-fixed mistakes" in r for r in diagnose(seen))


def test_a_worse_candidate_and_an_undecided_gain():
    worse = evidence(
        eval={
            **evidence()["eval"],
            "delta_mean": -0.1,
            "delta_low": -0.15,
            "delta_high": -0.05,
            "wins": 2,
            "losses": 10,
        },
        training={**evidence()["training"], "warm_start_from": "abc"},
    )
    assert any("worse than the champion (-0.100" in r for r in diagnose(worse))
    undecided = evidence(eval={**evidence()["eval"], "delta_mean": 0.03, "delta_low": -0.02})
    assert any(
        "better on average (+0.030) but the 95% CI reaches -0.020" in r for r in diagnose(undecided)
    )


def test_a_search_whose_trials_all_tied_says_the_rate_is_not_the_problem():
    trials = [{"learning_rate": r, "dev_metric": 0.62} for r in (3.3e-4, 1e-3, 3e-3)]
    search = {"ran": True, "metric": "exact_match", "dev_examples": 48, "trials": trials}
    seen = evidence(training={**evidence()["training"], "search": search})
    assert any("(0.00033, 0.001, 0.003) scored the same" in r for r in diagnose(seen))


def test_the_loss_curve_is_downsampled_to_at_most_200_points():
    report = TrainingReport(1000, 8, 1.0, 0.1, 1.0, 10, [float(i) for i in range(1000)])
    curve = report.loss_curve()
    assert len(curve) == 200
    assert curve[0] == [5, 2.0] and curve[-1] == [1000, 997.0]  # means of runs of 5 steps
    assert downsample([1.0, 2.0], 200) == [[1, 1.0], [2, 2.0]]


def test_the_gate_counts_the_same_answers_that_diagnose_reports():
    from schemas.tasks import GatePolicy
    from training.promotion_gate import decide

    references = ["B" if i % 3 == 0 else "A" for i in range(40)]
    rows = [  # both models answer the majority label every time
        {"id": f"e{i}", "prediction": "A", "reference": r, "exact_match": float(r == "A")}
        for i, r in enumerate(references)
    ]
    scores = {"eval": {"candidate": rows, "champion": rows}}
    decision = decide(scores, GatePolicy(), metric="exact_match")
    assert decision.verdict == "reject" and decision.evidence["eval"]["same_answers"] == 40
    assert any("answers like the base model on 40 of 40" in r for r in diagnose(decision.evidence))
