"""The always-valid rate comparison: its error rate when looked at after every event, its
closed form against numerical integration, its price against a one-look interval."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

from training.sequential_test import (
    compare_rates,
    difference_bounds,
    fixed_sample_halfwidth,
    mixture_boundary,
    tuned_rho,
)

CANARIES = 1000
EVENTS = 3000
CANARY_FRACTION = 0.2


def _simulate(rate_champion: float, rate_canary: float, seed: int) -> tuple[np.ndarray, ...]:
    """Cumulative (k, n) of both sides after every event, for CANARIES canaries."""
    rng = np.random.default_rng(seed)
    on_canary = rng.random((CANARIES, EVENTS)) < CANARY_FRACTION
    rates = np.where(on_canary, rate_canary, rate_champion)
    bad = rng.random((CANARIES, EVENTS)) < rates
    k_canary = np.cumsum(bad & on_canary, axis=1)
    n_canary = np.cumsum(on_canary, axis=1)
    k_champion = np.cumsum(bad & ~on_canary, axis=1)
    n_champion = np.cumsum(~on_canary, axis=1)
    return k_canary, n_canary, k_champion, n_champion


def _decided(rate_champion: float, rate_canary: float, seed: int) -> np.ndarray:
    """Per canary: did any look, after any event, exclude a zero difference?"""
    k_c, n_c, k_r, n_r = _simulate(rate_champion, rate_canary, seed)
    rho = tuned_rho(100, alpha=0.025)
    low, high = difference_bounds((k_c, n_c), (k_r, n_r), rho=rho, alpha=0.05)
    return ((low > 0) | (high < 0)).any(axis=1)


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.5])
def test_equal_rates_are_falsely_told_apart_in_at_most_5_percent_of_canaries(rate: float) -> None:
    """1,000 canaries with the champion's rate, each looked at after every one of 3,000
    events: the share ever declared worse or better stays within the nominal 5%."""
    false_decisions = _decided(rate, rate, seed=int(rate * 100)).mean()
    assert false_decisions <= 0.05
    # a test that always said "undecided" would pass the line above; the next one would not


def test_a_real_shift_is_found_in_nearly_every_canary() -> None:
    assert _decided(0.1, 0.4, seed=7).mean() > 0.99


def test_looking_after_every_event_would_break_a_one_look_test() -> None:
    """Why the sequential boundary is needed: the usual two-proportion z-test at 5%,
    checked after every event (from 30 outcomes a side), tells equal rates apart in far
    more than 5% of the canaries."""
    k_c, n_c, k_r, n_r = _simulate(0.1, 0.1, seed=3)
    p_c, p_r = k_c / np.maximum(n_c, 1), k_r / np.maximum(n_r, 1)
    pooled = (k_c + k_r) / (n_c + n_r)
    spread = np.sqrt(pooled * (1 - pooled) * (1 / np.maximum(n_c, 1) + 1 / np.maximum(n_r, 1)))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.abs(p_c - p_r) / spread
    naive = ((z > 1.96) & (n_c >= 30) & (n_r >= 30)).any(axis=1).mean()
    ours = _decided(0.1, 0.1, seed=3).mean()
    assert ours <= 0.05 < 0.2 < naive


def test_the_closed_form_is_the_normal_mixture_integral() -> None:
    """The boundary is where the mixture of exp(l S - l^2 V / 2) over l ~ N(0, 1/rho),
    integrated numerically (mpmath), reaches 1/alpha."""
    rho, alpha, variance = 12.0, 0.05, 75.0
    s = float(mixture_boundary(variance, rho=rho, alpha=alpha))

    def integrand(lam: mpmath.mpf) -> mpmath.mpf:
        density = mpmath.sqrt(rho / (2 * mpmath.pi)) * mpmath.exp(-rho * lam**2 / 2)
        return mpmath.exp(lam * s - lam**2 * variance / 2) * density

    mixture = mpmath.quad(integrand, [-mpmath.inf, 0, mpmath.inf])
    assert float(mixture) == pytest.approx(1 / alpha, rel=1e-9)


def test_the_always_valid_interval_is_wider_than_a_one_look_interval() -> None:
    rho = tuned_rho(400, alpha=0.05)
    for n in (50, 400, 5000):
        always = float(mixture_boundary(n / 4, rho=rho, alpha=0.05)) / n
        assert always > fixed_sample_halfwidth(n, alpha=0.05)
        assert always < 3 * fixed_sample_halfwidth(n, alpha=0.05) * math.sqrt(math.log(n))


def test_compare_rates_says_which_way_and_keeps_the_evidence() -> None:
    worse = compare_rates((80, 200), (100, 1000), target_n=200)
    better = compare_rates((4, 400), (300, 1000), target_n=200)
    same = compare_rates((20, 200), (100, 1000), target_n=200)
    assert (worse.verdict, better.verdict, same.verdict) == ("worse", "better", "undecided")
    assert worse.low > 0 and worse.candidate.rate == 0.4 and worse.reference.rate == 0.1
    assert same.low < 0 < same.high
    assert worse.as_dict()["candidate"]["n"] == 200


def test_no_outcomes_decide_nothing() -> None:
    assert compare_rates((0, 0), (0, 0)).verdict == "undecided"
    with pytest.raises(ValueError, match="between 0 and the total"):
        compare_rates((5, 3), (0, 10))
