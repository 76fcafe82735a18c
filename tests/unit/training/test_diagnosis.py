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


def test_a_candidate_that_gained_is_not_told_it_answers_like_the_champion():
    # the zoo's spam task, cycle 2: the champion was right on 113 of 120 already
    gained = {"n": 120, "candidate": 0.992, "champion": 0.942, "delta_mean": 0.05}
    seen = evidence(eval={**gained, "delta_low": 0.008, "delta_high": 0.1, "same_answers": 112})
    assert not any("answers like" in r for r in diagnose(seen))
    undecided = evidence(eval={**seen["eval"], "delta_low": -0.01})
    assert any("answers like the base model on 112 of 120" in r for r in diagnose(undecided))


def test_a_stalled_text_task_loss_is_named_unless_the_gate_measured_a_gain():
    stalled = {**evidence()["training"], "chance_loss": None, "first_loss": 2.0, "last_loss": 1.95}
    undecided = {**evidence()["eval"], "delta_low": -0.02}
    seen = evidence(training=stalled, eval=undecided)
    assert any("barely moved (2.000 → 1.950 over 120 steps)" in r for r in diagnose(seen))
    # A warm start begins at the champion's low loss: a flat curve with a measured gain is
    # not a stall to fix.
    warm = {**stalled, "first_loss": 0.273, "last_loss": 0.296, "warm_start_from": "a1"}
    promoted = evidence(training=warm)
    assert not any("barely moved" in r for r in diagnose(promoted))


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


def test_a_candidate_no_better_and_not_measurably_worse_is_told_so():
    # construction-faq's second cycle in the task zoo: -0.011, CI [-0.022, +0.0005] on 131
    flat = {**evidence()["eval"], "n": 131, "delta_mean": -0.011, "delta_low": -0.022}
    seen = evidence(
        eval={**flat, "delta_high": 0.0005},
        training={**evidence()["training"], "warm_start_from": "abc"},
    )
    told = [r for r in diagnose(seen) if "no better than the champion" in r]
    assert told and "(-0.011, 95% CI [-0.022, +0.001] on 131)" in told[0]
    warm = {**evidence()["training"], "warm_start_from": "abc"}
    worse = evidence(eval={**flat, "delta_high": -0.001}, training=warm)
    stalled = evidence(eval={**flat, "delta_high": 0.0005}, training={**warm, "last_loss": 1.9})
    first_cycle = evidence(eval={**flat, "delta_high": 0.0005})
    for other in (worse, stalled, first_cycle, evidence()):
        assert not [r for r in diagnose(other) if "no better" in r]


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
    seen = decision.evidence["eval"]
    assert decision.verdict == "reject" and seen["same_answers"] == 40
    assert seen["champion_wrong"] == seen["same_where_champion_wrong"] == 14  # every "B"
    expected = "answers like the base model on 14 of the 14 eval examples the base model got wrong"
    assert any(expected in r for r in diagnose(decision.evidence))


def test_a_better_candidate_a_strong_champion_agrees_with_is_not_told_it_changed_nothing():
    """The zoo's noun-supersense, second cycle: the champion right on 101 of 110, the
    candidate fixing most of its mistakes, the CI's lower bound at +0.000. The same answer
    where both are right is no symptom; the undecided gain is the story."""
    from schemas.tasks import GatePolicy
    from training.promotion_gate import decide

    references = [f"label{i % 8}" for i in range(110)]

    def rows(right: set[int]) -> list[dict]:
        return [
            {
                "id": f"e{i}",
                "prediction": r if i in right else "wrong",
                "reference": r,
                "exact_match": float(i in right),
            }
            for i, r in enumerate(references)
        ]

    champion = rows(set(range(9, 110)))  # wrong on the first 9, as in the zoo
    fixed = rows(set(range(5)) | set(range(10, 110)))  # fixes 5 of them, breaks one
    cases = {"fixed": fixed, "repeated": champion}
    seen = {}
    for name, candidate in cases.items():
        gate = {"eval": {"candidate": candidate, "champion": champion}}
        evidence = decide(gate, GatePolicy(), metric="exact_match").evidence
        evidence["training"] = {"warm_start_from": "adapter-1"}
        seen[name] = evidence
    assert seen["fixed"]["eval"]["same_answers"] == 104
    assert seen["fixed"]["eval"]["same_where_champion_wrong"] == 4
    assert seen["fixed"]["eval"]["delta_low"] <= 0  # undecided, as in the zoo
    assert not any("answers like" in r for r in diagnose(seen["fixed"]))
    expected = "answers like the champion on 9 of the 9 eval examples the champion got wrong"
    assert any(expected in r for r in diagnose(seen["repeated"]))


# (reference gloss, a chatty base model's answer, a candidate that learned the glosses' form):
# word-definition answers of the task zoo's first cycle, shortened
GLOSSES = [
    (
        "a small part that can be considered separately from the whole",
        'The word "detail" is a noun in the context of language, referring to a specific type '
        'of information that is considered to be essential. In this example, "detail" is used '
        "to describe the quality of a product or service.",
        "a small part of something",
    ),
    (
        "the process of taking in and expelling air during breathing",
        'The word "breath" is a verb in the sense of "to breathe" or "to exhale." It is a verb '
        "that is used to describe the act of taking a breath.",
        "the act of taking in air",
    ),
    (
        "(military) military action or resources protecting a country against potential enemies",
        'The word "defense" is a noun in the context of military operations. It refers to the '
        "act of defending or protecting oneself or one's country from external threats.",
        "the act of protecting a country",
    ),
    (
        "a noticeable deterioration in performance or quality",
        'The word "slump" is a noun that refers to a downward tendency or a decline in '
        "performance. It is a common idiomatic expression that describes a team that is "
        "struggling.",
        "a decline in performance",
    ),
]


def _text_rows(side: int) -> list[dict[str, Any]]:
    from training.metrics import chrf, token_f1

    return [
        {
            "id": f"e{i}-{k}",
            "prediction": case[side],
            "reference": case[0],
            "chrf": chrf(case[side], case[0]),
            "token_f1": token_f1(case[side], case[0]),
            "nll": 3.0,
        }
        for k in range(10)
        for i, case in enumerate(GLOSSES)
    ]


def test_a_candidate_chrf_undervalues_for_its_short_answers_is_told_apart_from_a_worse_one():
    from schemas.tasks import GatePolicy
    from training.promotion_gate import decide

    scores = {"eval": {"candidate": _text_rows(2), "champion": _text_rows(1)}}
    decision = decide(scores, GatePolicy(), metric="chrf")
    result = decision.evidence["eval"]
    assert decision.verdict == "reject" and result["delta_high"] < 0  # chrF prefers the chatter
    assert result["metrics"]["token_f1"]["candidate"] > result["metrics"]["token_f1"]["champion"]
    assert result["answer_words"]["champion"] > 3 * result["answer_words"]["reference"]
    said = diagnose(decision.evidence)
    assert any("worse than the base model" in r for r in said)
    length = [r for r in said if "answers at length" in r]
    assert len(length) == 1 and "primary_metric: token_f1" in length[0]

    # a candidate that is as chatty as the base model and only worse: no such excuse
    chatty = [{**row, "chrf": row["chrf"] - 0.05} for row in _text_rows(1)]
    worse = decide(
        {"eval": {"candidate": chatty, "champion": _text_rows(1)}}, GatePolicy(), metric="chrf"
    )
    assert not any("answers at length" in r for r in diagnose(worse.evidence))
    # the same short candidate judged on token F1 is not diagnosed at all: it is promoted
    by_f1 = decide(scores, GatePolicy(mode="auto"), metric="token_f1")
    assert by_f1.verdict == "promote" and diagnose(by_f1.evidence) == []
