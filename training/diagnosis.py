"""Why a cycle's candidate did (or did not) beat the champion, in sentences an operator can
act on: a pure function of the cycle's evidence (the gate's paired numbers and what training
recorded), so every sentence can be tested on crafted evidence without a model.

Each check looks at one symptom and says what to do about it; the order puts causes before
consequences (a model that learned nothing explains a candidate that answers like the base
model, which explains the gate's rejection).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

CHANCE_SHARE = 0.9
"""A last training loss above this share of the chance-level loss has not left chance."""
STALL_SHARE = 0.9
"""A last training loss above this share of the first has barely moved."""
SAME_ANSWER_SHARE = 0.9
"""The candidate answering like the model it would replace on this share of the eval set
means training changed almost nothing the gate can see."""
LONG_ANSWER_RATIO = 2.0
"""Answers this many times longer than the references collect partial credit from a
recall-weighted metric (chrF) for their length alone."""

Evidence = dict[str, Any]


def diagnose(evidence: Evidence) -> list[str]:
    """The actionable sentences that apply to a cycle's evidence (``GateDecision.evidence``
    with the worker's ``training`` section), most fundamental first; [] when none applies."""
    checks: list[Callable[[Evidence], str | None]] = [
        _too_few_eval,
        _loss_at_chance_or_stalled,
        _same_answers,
        _search_could_not_choose,
        _inputs_cut,
        _answers_cut,
        _regression_fell_back,
        _candidate_worse,
        _metric_rewards_length,
        _undecided_gain,
        _no_gain,
    ]
    return [sentence for check in checks if (sentence := check(evidence))]


def _replaced(evidence: Evidence) -> str:
    """What the candidate is compared with, in words."""
    return (
        "the champion" if evidence.get("training", {}).get("warm_start_from") else "the base model"
    )


def _measurably_gained(evidence: Evidence) -> bool:
    """The CI's lower bound of the candidate's gain is above the gate's ``min_delta``."""
    low = evidence.get("eval", {}).get("delta_low", 0.0)
    return low > evidence.get("policy", {}).get("min_delta", 0.0)


def _too_few_eval(evidence: Evidence) -> str | None:
    n = evidence.get("eval", {}).get("n", 0)
    needed = evidence.get("policy", {}).get("min_eval_size", 0)
    if n >= needed:
        return None
    return (
        f"Only {n} eval examples reached the gate and it needs {needed} to decide: import or "
        "correct more examples (a share of them, by hash, goes to the gate), or lower "
        "gate.min_eval_size."
    )


def _loss_at_chance_or_stalled(evidence: Evidence) -> str | None:
    training = evidence.get("training", {})
    first, last = training.get("first_loss"), training.get("last_loss")
    if last is None:
        return None
    chance = training.get("chance_loss")
    rate = training.get("recipe", {}).get("learning_rate")
    higher = f" (it trained at {rate:g})" if rate else ""
    if chance and last >= CHANCE_SHARE * chance:
        return (
            f"Training loss never left chance level: it ended at {last:.3f}, where a model "
            f"guessing among the labels scores {chance:.3f}. The model did not learn to tell the "
            "labels apart: check that the labels follow from the inputs and the instruction, add "
            f"examples, or set a higher training.learning_rate{higher}."
        )
    # A stall matters only when nothing was gained: a warm start begins at the champion's
    # low loss and may end there while the gate measures a gain (the zoo's email-headers,
    # second cycle: 0.273 -> 0.296, promoted +0.035, CI [+0.015, +0.053]).
    if first and last >= STALL_SHARE * first and not _measurably_gained(evidence):
        return (
            f"Training loss barely moved ({first:.3f} → {last:.3f} over "
            f"{training.get('steps', '?')} steps): set a higher training.learning_rate{higher} "
            "or more steps (training.max_steps, training.epochs)."
        )
    return None


def _same_answers(evidence: Evidence) -> str | None:
    """Only for a candidate that did not measurably gain, and counted where the model it
    would replace was wrong: where both are right the same answer is no symptom, so a strong
    champion leaves a better candidate few answers to change (the zoo's noun-supersense,
    second cycle: champion 0.918, candidate 0.955, the same answer on 103 of 110, CI
    [+0.000, +0.082]; it fixed 5 of the champion's 9 mistakes and repeated 3). Evidence
    stored before the gate counted the wrong ones is judged on every example."""
    result = evidence.get("eval", {})
    n, same = result.get("n", 0), result.get("same_answers")
    if not n or same is None or _measurably_gained(evidence):
        return None
    wrong = result.get("champion_wrong")
    replaced = _replaced(evidence)
    if wrong is None:
        if same < SAME_ANSWER_SHARE * n:
            return None
        where = f"on {same} of {n} eval examples"
    else:
        repeated = result.get("same_where_champion_wrong", 0)
        if not wrong or repeated < SAME_ANSWER_SHARE * wrong:
            return None
        where = (
            f"on {repeated} of the {wrong} eval examples {replaced} got wrong "
            f"({same} of {n} in all)"
        )
    return (
        f"The candidate answers like {replaced} {where}: training changed almost nothing "
        "the gate can see. More (or more varied) examples, or a higher "
        "training.learning_rate, move it further."
    )


def _search_could_not_choose(evidence: Evidence) -> str | None:
    search = evidence.get("training", {}).get("search") or {}
    if search.get("skipped"):
        return f"The learning-rate search did not run: {search['skipped']}."
    trials = search.get("trials") or []
    scores = {round(t["dev_metric"], 6) for t in trials}
    if len(trials) < 2 or len(scores) > 1:
        return None
    rates = ", ".join(f"{t['learning_rate']:g}" for t in trials)
    return (
        f"Every learning rate the search tried ({rates}) scored the same on the development "
        f"split ({trials[0]['dev_metric']:.3f} {search.get('metric', '')} on "
        f"{search.get('dev_examples', '?')} examples): the learning rate is not what holds "
        "this task back; look at the data (labels that follow from the inputs, enough examples)."
    )


def _inputs_cut(evidence: Evidence) -> str | None:
    training = evidence.get("training", {})
    cut, measured = training.get("inputs_cut", 0), training.get("measured_examples", 0)
    eval_cut = training.get("eval_inputs_cut", 0)
    if not cut and not eval_cut:
        return None
    recipe = training.get("recipe", {})
    return (
        f"Inputs were cut to fit {recipe.get('max_seq_len', '?')} tokens in {cut} of {measured} "
        f"training examples and {eval_cut} eval examples (the "
        f"{recipe.get('input_truncation', 'middle')} of each was dropped): if the answer "
        "depends on that part, set training.max_seq_len higher (slower steps)."
    )


def _answers_cut(evidence: Evidence) -> str | None:
    training = evidence.get("training", {})
    cut = training.get("answers_cut", 0)
    if not cut:
        return None
    limit = training.get("recipe", {}).get("max_answer_tokens", "?")
    return (
        f"{cut} training answers are longer than {limit} tokens and were cut in training "
        "(and generations stop there): set training.max_answer_tokens higher."
    )


def _regression_fell_back(evidence: Evidence) -> str | None:
    regression = evidence.get("regression", {})
    tolerance = evidence.get("policy", {}).get("regression_tolerance", 0.0)
    if not regression.get("n") or -regression.get("delta_mean", 0.0) <= tolerance:
        return None
    return (
        f"The candidate got {regression.get('losses', '?')} of {regression['n']} once-fixed "
        "mistakes wrong again (the regression set): the new examples may contradict earlier "
        "corrections; compare them with the regression-set losses listed with this cycle."
    )


def _candidate_worse(evidence: Evidence) -> str | None:
    result = evidence.get("eval", {})
    if not result.get("n") or result.get("delta_high", 0.0) >= 0:
        return None
    return (
        f"The candidate is worse than {_replaced(evidence)} ({result['delta_mean']:+.3f} "
        f"{evidence.get('metric', '')}; {result.get('wins', 0)} wins, "
        f"{result.get('losses', 0)} losses): look for a pattern in the losses listed with this "
        "cycle (a label the new data rarely shows, corrections that conflict)."
    )


def _metric_rewards_length(evidence: Evidence) -> str | None:
    """chrF weighs recall twice as much as precision, so a model that answers at length
    (a chatty base model) collects character n-grams a short, reference-like answer does not:
    the candidate can learn the references' form and still lose on chrF."""
    result = evidence.get("eval", {})
    words, metrics = result.get("answer_words"), result.get("metrics") or {}
    if evidence.get("metric") != "chrf" or result.get("delta_mean", 0.0) >= 0 or not words:
        return None
    reference, old, new = words["reference"], words["champion"], words["candidate"]
    f1 = metrics.get("token_f1")
    too_long = old >= LONG_ANSWER_RATIO * reference
    if not reference or not too_long or abs(new - reference) >= abs(old - reference):
        return None
    if not f1 or f1["candidate"] <= f1["champion"]:
        return None
    return (
        f"{_replaced(evidence).capitalize()} answers at length ({old:.0f} words on average "
        f"against the references' {reference:.0f}) and chrF, which weighs recall over "
        "precision, gives long answers partial credit for their length; the candidate's answers "
        f"are nearer the references' length ({new:.0f} words) and it does better on token F1 "
        f"({f1['champion']:.3f} → {f1['candidate']:.3f}). If answers like your references are "
        "what you want, make token_f1 the task's metric (primary_metric: token_f1)."
    )


def _undecided_gain(evidence: Evidence) -> str | None:
    result = evidence.get("eval", {})
    policy = evidence.get("policy", {})
    n, low = result.get("n", 0), result.get("delta_low", 0.0)
    if n < policy.get("min_eval_size", 0) or result.get("delta_mean", 0.0) <= 0:
        return None
    if _measurably_gained(evidence):
        return None
    return (
        f"The candidate is better on average ({result['delta_mean']:+.3f}) but the 95% CI "
        f"reaches {low:+.3f}: {n} eval examples cannot tell it from chance; more ground truth "
        "narrows the interval, so the next cycle may decide."
    )


def _no_gain(evidence: Evidence) -> str | None:
    """A warm-started candidate no better on average, and not measurably worse, that trained
    normally: more examples like the champion's taught it nothing the eval measures (seen on
    a FAQ task's second cycle, whose answers hold facts the questions do not)."""
    result = evidence.get("eval", {})
    policy = evidence.get("policy", {})
    n = result.get("n", 0)
    if not evidence.get("training", {}).get("warm_start_from"):
        return None  # a first cycle's rate was searched; other checks explain it
    if n < policy.get("min_eval_size", 0) or result.get("delta_mean", 0.0) > 0:
        return None
    if result.get("delta_high", 0.0) < 0:
        return None  # measurably worse: _candidate_worse says so
    if _loss_at_chance_or_stalled(evidence) or _same_answers(evidence):
        return None  # training, not the data, is the cause, and those checks say so
    return (
        f"The candidate is no better than the champion on average "
        f"({result['delta_mean']:+.3f}, 95% CI [{result.get('delta_low', 0.0):+.3f}, "
        f"{result['delta_high']:+.3f}] on {n}): these examples taught it nothing the eval "
        "measures. Corrections of the champion's own mistakes (the review queue puts answers "
        "with negative feedback or low confidence first) teach more than more examples like "
        "those it already gets right."
    )
