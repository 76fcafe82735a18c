"""A small learning-rate search on a task's first cycle (and after two rejections in a row).

The automatic recipe fixes every length and the number of steps from the data; the learning
rate is the one setting no statistic of the data gives, and the one that most often decides
whether a short cycle learns at all. So the first cycle of a task tries a few learning rates
around the automatic default and keeps the best one for the cycles after it.

Split discipline: the development split is carved from the cycle's *training* examples by
a hash of their id; the gate's eval split never reaches a trial, neither its training nor
the choice of the winner.

The trials are the candidates: each trains the cycle's whole run (its steps, its schedule)
on the rest of the training split, and the best on the development split is the adapter
handed to the gate. Shorter trials were cheaper but chose the wrong rate: a third of the
steps favours a higher rate than the full run wants (measured: README, 'Learning-rate
search'), and training the winner again cost a third run.

Compute budget: at most ``len(LEARNING_RATE_FACTORS)`` trials of the cycle's own steps, so
a searching cycle trains that many times the steps of a normal one and no more (fewer when a
trial is already perfect on the development split); each trial is scored once on the
development split (at most ``MAX_DEV_EXAMPLES`` examples).

Everything here is pure except the trial itself, which the caller passes in
(``training/cycle_worker.py`` trains and scores a real adapter).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from schemas.tasks import TrainingRecipe
from training.auto_recipe import ResolvedRecipe
from training.metrics import HIGHER_IS_BETTER

LEARNING_RATE_FACTORS = (1.0, 3.0)
"""Trial learning rates, as multiples of the automatic one: the automatic rate and one step
of 3x above it. Measured with full-length trials (README, 'Learning-rate search'): on both
zoo tasks tried the automatic rate was best or tied, and 3x beat 1/3x; two trials keep a
searching cycle at twice a normal one's training."""
AUTOMATIC = LEARNING_RATE_FACTORS.index(1.0)
"""The trial at the automatic rate, which wins full ties."""
DEV_FRACTION = 0.15
"""Share of the training examples held out as the development split of the trials."""
MAX_DEV_EXAMPLES = 64
"""Cap on the development split: scoring it is part of every trial's cost."""
MIN_DEV_EXAMPLES = 8
"""Fewer development examples cannot tell trials apart: the search is skipped."""
DEV_POINTS = 4
"""Times a trial measures its development loss while it trains (evenly spaced, the last at
its final step): the development curve beside the training loss."""
BEST_POSSIBLE = {"exact_match": 1.0, "token_f1": 1.0, "chrf": 1.0}
"""A trial that scores this on the development split ends the search: the trials left can
at best tie it, and a tie is decided by development loss, not worth a whole training run.
An easy task's first cycle (spam emails, say) then costs one run instead of two."""
REJECTIONS_BEFORE_SEARCH = 2
"""Gate rejections in a row (counted from the last search on) that start a new search."""
BUDGET = (
    f"at most {len(LEARNING_RATE_FACTORS)} trials, each the cycle's own training run on the "
    "training split less the development split (so a searching cycle trains up to "
    f"{len(LEARNING_RATE_FACTORS)} times a normal cycle's steps; a trial perfect on the "
    "development split ends the search); the best trial is the candidate, scored once on a "
    f"development split of at most {MAX_DEV_EXAMPLES} training examples"
)


@dataclass(frozen=True, slots=True)
class PastCycle:
    """What the search needs to know of one decided cycle of the task."""

    cycle_id: str
    verdict: str
    searched: bool
    """The cycle ran a search (whatever its outcome)."""
    tuned: dict[str, float] | None
    """The configuration its search chose; None when it did not search."""


def past_cycle(record: dict[str, Any]) -> PastCycle:
    """A cycles-table record (``training.cycle_records``) as the search reads it."""
    evidence = (record.get("decision") or {}).get("evidence") or {}
    search = (evidence.get("training") or {}).get("search") or {}
    return PastCycle(
        cycle_id=record["cycle_id"],
        verdict=record.get("verdict") or "",
        searched=bool(search.get("ran")),
        tuned=search.get("winner") if search.get("ran") else None,
    )


@dataclass(frozen=True, slots=True)
class SearchPlan:
    """Whether this cycle searches, why, and otherwise the tuned configuration it reuses."""

    search: bool
    reason: str
    tuned: dict[str, float] | None = None
    tuned_in: str | None = None
    """The cycle whose search chose ``tuned``."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> SearchPlan:
        """The plan in a job file; a job written before the search existed does not search."""
        if not data:
            return cls(search=False, reason="the job carries no search plan")
        return cls(**data)


def plan_search(history: Sequence[PastCycle], recipe: TrainingRecipe) -> SearchPlan:
    """The trigger rule, over the task's decided cycles (oldest first): search on the first
    cycle (no tuned configuration yet) and when the gate rejected ``REJECTIONS_BEFORE_SEARCH``
    times in a row since the last search; otherwise reuse the last search's winner. A task
    that sets its own learning rate is never searched: there is nothing left to choose."""
    if recipe.learning_rate != "auto":
        return SearchPlan(False, f"the task sets its learning rate ({recipe.learning_rate:g})")
    searches = [i for i, cycle in enumerate(history) if cycle.searched]
    if not searches:
        return SearchPlan(True, "first cycle of the task: no tuned configuration yet")
    last = searches[-1]
    rejected = 0
    for cycle in reversed(history[last:]):
        if cycle.verdict != "reject":
            break
        rejected += 1
    if rejected >= REJECTIONS_BEFORE_SEARCH:
        return SearchPlan(True, f"the gate rejected the last {rejected} cycles in a row")
    winner = history[last]
    return SearchPlan(
        False,
        f"reusing the configuration tuned in {winner.cycle_id}",
        tuned=winner.tuned,
        tuned_in=winner.cycle_id,
    )


def apply_tuned(recipe: ResolvedRecipe, tuned: dict[str, float] | None) -> ResolvedRecipe:
    """The cycle's recipe with a search's winning settings in place of the automatic ones."""
    if not tuned:
        return recipe
    return replace(recipe, learning_rate=float(tuned["learning_rate"]))


def _hash_position(example_id: str) -> float:
    digest = hashlib.sha256(f"dev:{example_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def dev_split(examples: Sequence[dict]) -> tuple[list[dict], list[dict]]:
    """(fit, dev): the examples whose id hashes lowest, ``DEV_FRACTION`` of them up to
    ``MAX_DEV_EXAMPLES``, form dev; the rest train the trials. Deterministic: the same
    examples always give the same split, whatever their order."""
    ranked = sorted(examples, key=lambda e: _hash_position(str(e["id"])))
    size = min(MAX_DEV_EXAMPLES, int(len(ranked) * DEV_FRACTION))
    dev_ids = {str(e["id"]) for e in ranked[:size]}
    fit = [e for e in examples if str(e["id"]) not in dev_ids]
    dev = [e for e in examples if str(e["id"]) in dev_ids]
    return fit, dev


def dev_checkpoints(steps: int) -> set[int]:
    """The steps after which a trial of ``steps`` steps measures its development loss."""
    return {max(1, round(steps * k / DEV_POINTS)) for k in range(1, DEV_POINTS + 1)}


def trial_recipes(recipe: ResolvedRecipe) -> list[ResolvedRecipe]:
    """One recipe per trial: the learning rates around ``recipe``'s, everything else (steps,
    warm-up, schedule) as the cycle would train."""
    return [
        replace(recipe, learning_rate=float(f"{recipe.learning_rate * factor:.3g}"))
        for factor in LEARNING_RATE_FACTORS
    ]


@dataclass
class Trial:
    """One configuration tried: its settings, what training did, how it scored on dev."""

    learning_rate: float
    steps: int
    dev_metric: float
    dev_nll: float
    first_loss: float
    last_loss: float
    seconds: float
    loss_curve: list[list[float]] = field(default_factory=list)
    """(step, loss) pairs, at most 200."""
    dev_curve: list[list[float]] = field(default_factory=list)
    """(step, development loss) pairs: the dev split's mean reply-token loss, measured
    ``DEV_POINTS`` times during the trial."""
    adapter_id: str | None = None
    """The adapter the trial trained: the winner's is the cycle's candidate, the others are
    deleted once the winner is chosen."""


TrialRunner = Callable[[ResolvedRecipe, Sequence[dict], Sequence[dict]], Trial]
"""Trains ``recipe`` on the fit examples, keeps the adapter, and scores it on the dev
examples."""


def choose(trials: Sequence[Trial], metric: str, dev_examples: int) -> int:
    """Index of the best trial on dev. The task's metric decides, but a difference of one
    development example's worth (1 / ``dev_examples``) or less is a tie: a single example of
    a small split cannot tell two rates apart. Ties go to the lower dev loss (teacher-forced
    over every reply token, a steadier signal), then to the trial nearest the automatic
    rate. Measured: on noun-supersense the 3e-3 trial beat 1e-3 by one dev example of 49,
    while 1e-3 had the lower dev loss and scored 0.955 held out against 0.930."""
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
    best = max(sign * trial.dev_metric for trial in trials)
    tolerance = 1.0 / max(1, dev_examples) + 1e-9  # float sums of per-example scores
    tied = [i for i, trial in enumerate(trials) if sign * trial.dev_metric >= best - tolerance]
    return min(tied, key=lambda i: (trials[i].dev_nll, abs(i - AUTOMATIC)))


def search(
    examples: Sequence[dict], recipe: ResolvedRecipe, *, metric: str, run_trial: TrialRunner
) -> dict[str, Any]:
    """Run the trials on ``examples`` (the cycle's training examples only) and return the
    search's evidence: the budget, the split sizes, every trial, and the winner (None when
    the examples are too few to carve a development split)."""
    fit, dev = dev_split(examples)
    evidence: dict[str, Any] = {
        "ran": True,
        "budget": BUDGET,
        "metric": metric,
        "fit_examples": len(fit),
        "dev_examples": len(dev),
        "trials": [],
        "winner": None,
    }
    if len(dev) < MIN_DEV_EXAMPLES:
        evidence["ran"] = False
        evidence["skipped"] = (
            f"only {len(examples)} training examples: too few to carve a development split "
            f"of {MIN_DEV_EXAMPLES}; trained with the automatic learning rate"
        )
        return evidence
    trials: list[Trial] = []
    candidates = trial_recipes(recipe)
    for candidate in candidates:
        trials.append(run_trial(candidate, fit, dev))
        perfect = trials[-1].dev_metric >= BEST_POSSIBLE.get(metric, math.inf) - 1e-9
        if perfect and len(trials) < len(candidates):
            evidence["stopped_early"] = (
                f"the trial at {candidate.learning_rate:g} answered all {len(dev)} "
                f"development examples right ({metric} {trials[-1].dev_metric:.3f}): no "
                "other rate could score higher, so the remaining trials were not trained"
            )
            break
    best = choose(trials, metric, len(dev))
    evidence["trials"] = [asdict(trial) for trial in trials]
    evidence["winner"] = {"learning_rate": trials[best].learning_rate}
    evidence["winner_trial"] = best
    return evidence
