"""What live outcomes decide: a canary's fate, and whether a champion drifted.

Pure functions over outcome counts (the live monitor's windows, summed). The rate compared
is the share of judged answers that came back negative: a thumbs-down, a rating of 1 or 2,
an edit, or a reviewer's correction. ``training.sequential_test`` keeps the comparison valid
however often the control plane looks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from schemas.tasks import CanaryPolicy
from training.sequential_test import ALPHA, Comparison, compare_rates

CanaryAction = Literal["promote", "rollback", "watch"]


@dataclass(frozen=True, slots=True)
class Outcomes:
    """Counts of what happened to one version's answers in some period."""

    answers: int = 0
    thumbs_up: int = 0
    thumbs_down: int = 0
    ratings: int = 0
    low_ratings: int = 0
    """Ratings of 1 or 2."""
    accepted: int = 0
    edited: int = 0
    corrected: int = 0

    @property
    def negative(self) -> int:
        return self.thumbs_down + self.low_ratings + self.edited + self.corrected

    @property
    def judged(self) -> int:
        """Answers' signals that say good or bad (an answer with none says nothing)."""
        return (
            self.thumbs_up
            + self.thumbs_down
            + self.ratings
            + self.accepted
            + self.edited
            + (self.corrected)
        )

    @property
    def negative_rate(self) -> float | None:
        return self.negative / self.judged if self.judged else None

    def __add__(self, other: Outcomes) -> Outcomes:
        return Outcomes(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in _FIELDS})

    @classmethod
    def from_counts(cls, counts: Mapping[str, Any]) -> Outcomes:
        """From a live-counts message's ``counts`` (unknown keys ignored, bad values as 0)."""
        values = {}
        for f in _FIELDS:
            value = counts.get(f.name, 0)
            values[f.name] = value if isinstance(value, int) and value >= 0 else 0
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "negative": self.negative, "judged": self.judged}


_FIELDS = fields(Outcomes)


def total(parts: Iterable[Outcomes]) -> Outcomes:
    summed = Outcomes()
    for part in parts:
        summed = summed + part
    return summed


@dataclass(frozen=True, slots=True)
class LiveDecision:
    action: CanaryAction
    reason: str
    comparison: Comparison

    def evidence(self) -> dict[str, Any]:
        """What the audit log keeps: counts, rates, the interval, the level."""
        return {"action": self.action, "reason": self.reason, **self.comparison.as_dict()}


def decide_canary(
    canary: Outcomes, champion: Outcomes, policy: CanaryPolicy, *, elapsed_s: float
) -> LiveDecision:
    """Promote, roll back or keep watching a canary, from both versions' outcomes over the
    same period. A decision needs ``min_events`` judged answers on each side; when the
    longest duration passes undecided, the policy's default applies."""
    comparison = compare_rates(
        (canary.negative, canary.judged),
        (champion.negative, champion.judged),
        target_n=policy.min_events,
    )
    shown = _shown(comparison)
    enough = min(canary.judged, champion.judged) >= policy.min_events
    if enough and comparison.verdict == "worse":
        return LiveDecision("rollback", f"canary is worse: {shown}", comparison)
    if enough and comparison.verdict == "better":
        return LiveDecision("promote", f"canary is better: {shown}", comparison)
    if elapsed_s >= policy.max_duration_s:
        why = "no difference shown" if enough else f"fewer than {policy.min_events} judged each"
        return LiveDecision(
            policy.default,
            f"longest duration ({policy.max_duration_s:.0f} s) reached, {why}: {shown}; "
            f"the policy's default is {policy.default}",
            comparison,
        )
    return LiveDecision("watch", f"watching: {shown}", comparison)


@dataclass(frozen=True, slots=True)
class DriftAlert:
    baseline: str
    """'first_window' (the champion's own first window) or 'previous_champion'."""
    reason: str
    comparison: Comparison

    def evidence(self) -> dict[str, Any]:
        return {"baseline": self.baseline, "reason": self.reason, **self.comparison.as_dict()}


def detect_drift(
    current: Outcomes, baselines: Mapping[str, Outcomes], *, min_events: int
) -> list[DriftAlert]:
    """The baselines the champion's current window is worse than (negative-feedback rate,
    at the sequential test's level), once both have ``min_events`` judged answers."""
    alerts = []
    for name, baseline in baselines.items():
        if min(current.judged, baseline.judged) < min_events:
            continue
        comparison = compare_rates(
            (current.negative, current.judged),
            (baseline.negative, baseline.judged),
            target_n=min_events,
        )
        if comparison.verdict == "worse":
            reason = f"champion's negative rate is worse than its {name}: {_shown(comparison)}"
            alerts.append(DriftAlert(name, reason, comparison))
    return alerts


def _shown(c: Comparison) -> str:
    return (
        f"negative rate {c.candidate.rate:.3f} ({c.candidate.k}/{c.candidate.n}) vs "
        f"{c.reference.rate:.3f} ({c.reference.k}/{c.reference.n}), difference "
        f"{c.difference:+.3f} in [{c.low:+.3f}, {c.high:+.3f}] ({1 - ALPHA:.0%} always-valid)"
    )
