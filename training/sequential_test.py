"""An always-valid comparison of two Bernoulli rates: a canary's against its champion's.

Each rate gets a time-uniform confidence sequence from the two-sided normal-mixture boundary
of Howard, Ramdas, McAuliffe and Sekhon (2021), "Time-uniform, nonparametric, nonasymptotic
confidence sequences", Annals of Statistics 49(2), 1055-1080 (the normal mixture, their
eq. (14)). A Bernoulli outcome is sub-Gaussian with variance proxy 1/4, so for ``n``
outcomes with ``k`` successes, with ``V = n / 4``,

    P(exists n: |k - n p| >= sqrt((V + rho) * log((V + rho) / (rho * alpha**2)))) <= alpha.

The mixture ``exp(lambda S - lambda**2 V / 2)`` over ``lambda ~ N(0, 1/rho)`` is a
nonnegative supermartingale, and Ville's inequality bounds the chance that it ever crosses
``1/alpha``: the interval holds at every ``n`` at once, so it stays valid however often it
is looked at, after every event if need be. Giving each side ``alpha / 2`` (a union bound)
makes the interval of the difference of the two rates hold with ``1 - alpha`` at all times.

The bound ignores that a small rate varies less than 1/4; it is conservative, never wrong.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

ALPHA = 0.05
"""Chance of ever deciding wrongly when the two rates are equal (the test's level)."""

Verdict = Literal["worse", "better", "undecided"]


def mixture_boundary(variance: Any, *, rho: float, alpha: float) -> Any:
    """The two-sided normal-mixture boundary on ``|S_n|`` at intrinsic time ``variance``
    (``V_n``): works elementwise on numpy arrays, so simulations use the same code."""
    spread = np.asarray(variance, dtype=float) + rho
    return np.sqrt(spread * np.log(spread / (rho * alpha**2)))


def tuned_rho(target_n: int, *, alpha: float) -> float:
    """The mixture's precision ``rho`` that makes the interval narrowest after
    ``target_n`` outcomes (Howard et al. tune it the same way: it fixes where the
    sequence is tightest, not whether it is valid)."""
    variance = max(target_n, 1) / 4
    candidates = np.geomspace(variance * 1e-3, variance * 10, 400)
    widths = mixture_boundary(variance, rho=candidates, alpha=alpha)
    return float(candidates[int(np.argmin(widths))])


@dataclass(frozen=True, slots=True)
class RateInterval:
    """A time-uniform interval of one rate after ``n`` outcomes, ``k`` of them counted."""

    k: int
    n: int
    rate: float
    low: float
    high: float


def rate_bounds(k: Any, n: Any, *, rho: float, alpha: float) -> tuple[Any, Any]:
    """The confidence sequence of a Bernoulli rate at ``n`` outcomes, ``k`` counted:
    ``(low, high)`` clipped to [0, 1] (the whole of it before any outcome). Elementwise."""
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    seen = np.maximum(n, 1)
    rate = k / seen
    half = np.where(n > 0, mixture_boundary(n / 4, rho=rho, alpha=alpha) / seen, 1.0)
    return np.clip(rate - half, 0.0, 1.0), np.clip(rate + half, 0.0, 1.0)


def rate_interval(k: int, n: int, *, rho: float, alpha: float) -> RateInterval:
    """One rate's interval, as a record for the evidence."""
    if not 0 <= k <= n:
        raise ValueError(f"counted outcomes {k} must lie between 0 and the total {n}")
    low, high = rate_bounds(k, n, rho=rho, alpha=alpha)
    return RateInterval(k=k, n=n, rate=k / n if n else 0.0, low=float(low), high=float(high))


def difference_bounds(
    candidate: tuple[Any, Any], reference: tuple[Any, Any], *, rho: float, alpha: float
) -> tuple[Any, Any]:
    """Interval of (candidate rate - reference rate) that holds at every look with
    ``1 - alpha``: each side's sequence at ``alpha / 2``. Elementwise on ``(k, n)`` arrays."""
    ours_low, ours_high = rate_bounds(*candidate, rho=rho, alpha=alpha / 2)
    theirs_low, theirs_high = rate_bounds(*reference, rho=rho, alpha=alpha / 2)
    return ours_low - theirs_high, ours_high - theirs_low


@dataclass(frozen=True, slots=True)
class Comparison:
    """Candidate rate minus reference rate, with its always-valid interval."""

    candidate: RateInterval
    reference: RateInterval
    difference: float
    low: float
    high: float
    alpha: float
    verdict: Verdict

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_rates(
    candidate: tuple[int, int],
    reference: tuple[int, int],
    *,
    alpha: float = ALPHA,
    target_n: int = 200,
    margin: float = 0.0,
) -> Comparison:
    """Compare two rates given as ``(counted, total)``: ``worse`` when the candidate's rate
    is above the reference's by more than ``margin`` at level ``alpha`` (for a rate of bad
    outcomes, worse), ``better`` when below it by more than ``margin``, else ``undecided``.

    Valid at every look: when both rates are equal, the chance that any look ever says
    ``worse`` or ``better`` is at most ``alpha``."""
    rho = tuned_rho(target_n, alpha=alpha / 2)
    ours = rate_interval(*candidate, rho=rho, alpha=alpha / 2)
    theirs = rate_interval(*reference, rho=rho, alpha=alpha / 2)
    lows, highs = difference_bounds(candidate, reference, rho=rho, alpha=alpha)
    low, high = float(lows), float(highs)
    verdict: Verdict = "undecided"
    if low > margin:
        verdict = "worse"
    elif high < -margin:
        verdict = "better"
    return Comparison(
        candidate=ours,
        reference=theirs,
        difference=ours.rate - theirs.rate,
        low=low,
        high=high,
        alpha=alpha,
        verdict=verdict,
    )


def fixed_sample_halfwidth(n: int, *, alpha: float) -> float:
    """Hoeffding's half-width for one look at ``n`` outcomes: what a test that is looked at
    once may use. The always-valid interval must be wider; the gap is the price of peeking."""
    return math.sqrt(math.log(2 / alpha) / (2 * n))
