"""The path of a canary's live comparison, window by window, for the console's chart.

The live guard decides on the sums of both versions' windows since the canary started.
Replaying those sums one window at a time shows how the always-valid interval of
(canary rate - champion rate) narrowed until it left zero (a decision) or the canary ended:
the same numbers the guard used, so the chart and the decision cannot disagree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from training.live_decisions import Outcomes
from training.sequential_test import compare_rates

WindowKey = tuple[str, str | None, int]
"""(task, adapter id or None for the base model, window start in Unix seconds)."""


def canary_trail(
    windows: Mapping[WindowKey, Outcomes],
    *,
    task: str,
    canary_id: str,
    champion_id: str | None,
    start_s: float,
    window_s: int,
    min_events: int,
) -> list[dict[str, Any]]:
    """One point per window since ``start_s``: at the window's end, both versions' summed
    judged answers, their negative rates, and the difference's interval (``low``, ``high``).
    The guard rolls back once ``low > 0`` and promotes once ``high < 0`` (with enough events)."""
    first = math.floor(start_s / window_s) * window_s
    starts = sorted(
        {
            w
            for (name, version, w) in windows
            if name == task and version in (canary_id, champion_id) and w >= first
        }
    )
    ours, theirs = Outcomes(), Outcomes()
    points = []
    for start in starts:
        ours = ours + windows.get((task, canary_id, start), Outcomes())
        theirs = theirs + windows.get((task, champion_id, start), Outcomes())
        comparison = compare_rates(
            (ours.negative, ours.judged), (theirs.negative, theirs.judged), target_n=min_events
        )
        points.append(
            {
                "t": start + window_s,
                "canary_judged": ours.judged,
                "champion_judged": theirs.judged,
                "canary_rate": ours.negative_rate,
                "champion_rate": theirs.negative_rate,
                "difference": comparison.difference,
                "low": comparison.low,
                "high": comparison.high,
            }
        )
    return points
