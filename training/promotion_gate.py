"""The promotion gate: does the candidate measurably beat the champion, and break nothing?

A pure function over per-example scores of both models on the same examples:
1. the eval set is large enough to decide on;
2. the lower bound of the 95% bootstrap CI of the paired improvement on the primary metric
   is above the policy's minimum delta (McNemar's exact test is reported for pass/fail);
3. on the regression set (mistakes once fixed), the candidate does not fall behind the
   champion by more than the tolerance.
Then ``auto`` promotes and ``manual`` waits for an operator. Every number is kept as evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from schemas.tasks import GatePolicy
from training.metrics import HIGHER_IS_BETTER, exact_match
from training.paired_stats import bootstrap_mean_ci, mcnemar_exact

MAX_LISTED = 25


@dataclass
class GateDecision:
    verdict: str  # "promote" | "await_approval" | "reject"
    reasons: list[str]
    evidence: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(
    scores: dict[str, dict[str, list[dict]]], policy: GatePolicy, *, metric: str
) -> GateDecision:
    """``scores[split][side]``: per-example rows (with ``id`` and metric values) for split in
    eval/regression and side in candidate/champion."""
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
    evaluation = _paired(scores["eval"], metric, sign)
    regression = _paired(scores.get("regression", {"candidate": [], "champion": []}), metric, sign)
    evidence = {
        "metric": metric,
        "policy": policy.model_dump(),
        "eval": evaluation,
        "regression": regression,
    }
    n = evaluation["n"]
    reasons: list[str] = []
    if n < policy.min_eval_size:
        reasons.append(f"only {n} eval examples; the policy needs {policy.min_eval_size} to decide")
        return GateDecision("reject", reasons, evidence)
    low, mean, high = evaluation["delta_low"], evaluation["delta_mean"], evaluation["delta_high"]
    shown = f"{metric} {_fmt(evaluation['champion'])} → {_fmt(evaluation['candidate'])}"
    ci = f"improvement {mean:+.3f}, 95% CI [{low:+.3f}, {high:+.3f}]"
    if low <= policy.min_delta:
        reasons.append(
            f"not a measurable improvement: {shown}; {ci}, lower bound not above "
            f"{policy.min_delta:+.3f}"
        )
    else:
        reasons.append(f"measurable improvement: {shown}; {ci}")
    if regression["n"]:
        drop = -regression["delta_mean"]
        line = (
            f"regression set ({regression['n']} fixed mistakes): {metric} "
            f"{_fmt(regression['champion'])} → {_fmt(regression['candidate'])}"
        )
        if drop > policy.regression_tolerance:
            reasons.append(
                f"{line}: falls back by {drop:.3f}, more than the tolerance "
                f"{policy.regression_tolerance:.3f}"
            )
        else:
            reasons.append(f"{line}: holds")
    rejected = low <= policy.min_delta or (
        regression["n"] and -regression["delta_mean"] > policy.regression_tolerance
    )
    if rejected:
        return GateDecision("reject", reasons, evidence)
    if policy.mode == "manual":
        reasons.append("policy is manual: awaiting an operator's approval")
        return GateDecision("await_approval", reasons, evidence)
    return GateDecision("promote", reasons, evidence)


def _paired(sides: dict[str, list[dict]], metric: str, sign: float) -> dict[str, Any]:
    champion = {row["id"]: row for row in sides.get("champion", [])}
    pairs = [
        (row, champion[row["id"]]) for row in sides.get("candidate", []) if row["id"] in champion
    ]
    if not pairs:
        return {
            "n": 0,
            "candidate": None,
            "champion": None,
            "delta_mean": 0.0,
            "delta_low": 0.0,
            "delta_high": 0.0,
        }
    differences = [sign * (c[metric] - b[metric]) for c, b in pairs]
    interval = bootstrap_mean_ci(differences)
    wins = [(c, b) for c, b in pairs if sign * (c[metric] - b[metric]) > 1e-9]
    losses = [(c, b) for c, b in pairs if sign * (c[metric] - b[metric]) < -1e-9]
    wrong = [(c, b) for c, b in pairs if not _right(b)]
    result: dict[str, Any] = {
        "n": len(pairs),
        "candidate": _mean([c[metric] for c, _ in pairs]),
        "champion": _mean([b[metric] for _, b in pairs]),
        "delta_mean": interval.mean,
        "delta_low": interval.low,
        "delta_high": interval.high,
        "wins": len(wins),
        "losses": len(losses),
        # the same answer from both models: a candidate that learned nothing gives it on all,
        # and above all where the champion was wrong (where both are right it is no symptom)
        "same_answers": sum(1 for c, b in pairs if _same(c, b)),
        "champion_wrong": len(wrong),
        "same_where_champion_wrong": sum(1 for c, b in wrong if _same(c, b)),
        "win_examples": [_side_by_side(c, b) for c, b in wins[:MAX_LISTED]],
        "loss_examples": [_side_by_side(c, b) for c, b in losses[:MAX_LISTED]],
    }
    if metric == "exact_match":
        result["mcnemar_p"] = mcnemar_exact(len(wins), len(losses))
    # every metric the rows carry, the primary one included, so a diagnosis can tell a
    # candidate the primary metric undervalues (e.g. chrF rewarding long answers) from a worse one
    result["metrics"] = {
        name: {
            "candidate": _mean([c[name] for c, _ in pairs]),
            "champion": _mean([b[name] for _, b in pairs]),
        }
        for name in HIGHER_IS_BETTER
        if all(name in c and name in b for c, b in pairs)
    }
    if all(isinstance(c.get("reference"), str) for c, _ in pairs):
        result["answer_words"] = {
            "candidate": _mean([_words(c.get("prediction")) for c, _ in pairs]),
            "champion": _mean([_words(b.get("prediction")) for _, b in pairs]),
            "reference": _mean([_words(c["reference"]) for c, _ in pairs]),
        }
    return result


def _same(candidate: dict, champion: dict) -> bool:
    return candidate.get("prediction") == champion.get("prediction")


def _right(row: dict) -> bool:
    """The answer is the reference (whatever the task's metric)."""
    prediction, reference = row.get("prediction"), row.get("reference")
    return (
        isinstance(prediction, str)
        and isinstance(reference, str)
        and bool(exact_match(prediction, reference))
    )


def _words(text: Any) -> int:
    return len(text.split()) if isinstance(text, str) else 0


def _side_by_side(candidate: dict, champion: dict) -> dict[str, Any]:
    return {
        "id": candidate["id"],
        "input": candidate.get("input"),
        "reference": candidate.get("reference"),
        "candidate": candidate.get("prediction"),
        "champion": champion.get("prediction"),
    }


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
