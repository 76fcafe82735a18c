"""Paired statistics: candidate and champion scored on the same examples."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Interval:
    mean: float
    low: float
    high: float
    confidence: float


def bootstrap_mean_ci(
    differences: Sequence[float],
    *,
    resamples: int = 4000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap CI of the mean paired difference (seeded, vectorised)."""
    values = np.asarray(differences, dtype=float)
    if values.size == 0:
        return Interval(0.0, 0.0, 0.0, confidence)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, values.size, size=(resamples, values.size))
    means = values[picks].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return Interval(float(values.mean()), float(low), float(high), confidence)


def mcnemar_exact(wins: int, losses: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pairs: ``wins`` where only the
    candidate passes, ``losses`` where only the champion passes (binomial, p = 1/2)."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)
