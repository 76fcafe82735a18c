"""The canary's trail (the console's decision-boundary chart) replays the live guard's sums."""

from __future__ import annotations

from schemas.tasks import CanaryPolicy
from training.canary_trail import canary_trail
from training.live_decisions import Outcomes, decide_canary


def test_each_point_sums_the_windows_so_far_and_the_last_is_the_guards_comparison() -> None:
    windows = {
        ("t", "cand", 0): Outcomes(answers=99, thumbs_down=99),  # before the canary started
        ("t", "cand", 60): Outcomes(answers=100, thumbs_up=50, thumbs_down=50),
        ("t", None, 60): Outcomes(answers=100, thumbs_up=90, thumbs_down=10),
        ("t", "cand", 120): Outcomes(answers=150, thumbs_up=75, thumbs_down=75),
        ("t", None, 120): Outcomes(answers=150, thumbs_up=135, thumbs_down=15),
        ("other", "cand", 120): Outcomes(answers=5, thumbs_down=5),  # another task
        ("t", "older", 120): Outcomes(answers=5, thumbs_down=5),  # another version
    }
    trail = canary_trail(
        windows,
        task="t",
        canary_id="cand",
        champion_id=None,
        start_s=75,
        window_s=60,
        min_events=40,
    )
    assert [p["t"] for p in trail] == [120, 180]
    assert [(p["canary_judged"], p["champion_judged"]) for p in trail] == [(100, 100), (250, 250)]
    assert (trail[-1]["canary_rate"], trail[-1]["champion_rate"]) == (0.5, 0.1)
    assert trail[0]["high"] - trail[0]["low"] > trail[1]["high"] - trail[1]["low"]  # narrows

    policy = CanaryPolicy(min_events=40, max_duration_s=3600)
    decision = decide_canary(
        Outcomes(answers=250, thumbs_up=125, thumbs_down=125),
        Outcomes(answers=250, thumbs_up=225, thumbs_down=25),
        policy,
        elapsed_s=10,
    )
    assert decision.action == "rollback"
    assert (trail[-1]["low"], trail[-1]["high"]) == (
        decision.comparison.low,
        decision.comparison.high,
    )
    assert trail[-1]["low"] > 0  # the chart shows the interval above the boundary
