"""Canary and drift decisions over outcome counts."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from schemas.tasks import CanaryPolicy, GatePolicy, TaskDefinition
from training.live_decisions import Outcomes, decide_canary, detect_drift, total

POLICY = CanaryPolicy(fraction=0.2, min_events=50, max_duration_s=600, default="promote")


def _feedback(up: int, down: int) -> Outcomes:
    return Outcomes(answers=up + down, thumbs_up=up, thumbs_down=down)


def test_negative_rate_counts_downs_low_ratings_edits_and_corrections() -> None:
    mixed = Outcomes(
        answers=10, thumbs_up=2, thumbs_down=1, ratings=3, low_ratings=1, edited=1, corrected=1
    )
    assert (mixed.negative, mixed.judged) == (4, 8)
    assert total([mixed, mixed]).judged == 16
    assert Outcomes.from_counts({"thumbs_up": 3, "bogus": 1, "edited": -2}).judged == 3


def test_a_clearly_worse_canary_is_rolled_back_with_its_evidence() -> None:
    decision = decide_canary(_feedback(60, 40), _feedback(900, 100), POLICY, elapsed_s=30)
    assert decision.action == "rollback"
    evidence = decision.evidence()
    assert evidence["candidate"]["k"] == 40 and evidence["reference"]["n"] == 1000
    assert evidence["low"] > 0
    assert "0.400" in decision.reason and "0.100" in decision.reason


def test_too_few_events_wait_even_when_the_rates_differ() -> None:
    decision = decide_canary(_feedback(0, 30), _feedback(900, 100), POLICY, elapsed_s=30)
    assert decision.action == "watch"


def test_undecided_at_the_longest_duration_takes_the_default() -> None:
    same = (_feedback(90, 10), _feedback(450, 50))
    assert decide_canary(*same, POLICY, elapsed_s=599).action == "watch"
    assert decide_canary(*same, POLICY, elapsed_s=600).action == "promote"
    cautious = POLICY.model_copy(update={"default": "rollback"})
    decision = decide_canary(*same, cautious, elapsed_s=601)
    assert decision.action == "rollback" and "default is rollback" in decision.reason


def test_drift_alerts_name_the_baseline_that_was_better() -> None:
    now = _feedback(60, 40)
    alerts = detect_drift(
        now,
        {"first_window": _feedback(180, 20), "previous_champion": _feedback(60, 40)},
        min_events=50,
    )
    assert [a.baseline for a in alerts] == ["first_window"]
    assert detect_drift(now, {"first_window": _feedback(20, 2)}, min_events=50) == []


def test_the_canary_policy_lives_in_the_gate_and_is_checked() -> None:
    task = TaskDefinition.model_validate(
        {
            "name": "t",
            "instruction": "x",
            "kind": "text",
            "gate": {"canary": {"fraction": 0.25, "min_events": 20}},
        }
    )
    assert task.gate.canary is not None and task.gate.canary.fraction == 0.25
    assert task.drift_policy == "alert" and GatePolicy().canary is None
    with pytest.raises(ValidationError, match="fraction"):
        CanaryPolicy(fraction=1.5)
