"""A zoo task, and the split discipline every task's data goes through.

A ``ZooTask`` carries what a benchmark needs to run Flywheel and a hand-made baseline on one
real task: the four fields of a task definition that differ between tasks (name, kind,
labels, instruction) and three disjoint example sets: ``train`` for the first cycle,
``more`` for the second, ``held_out`` for measuring both (never trained on).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from schemas.tasks import TaskDefinition

Example = dict[str, str]
"""One example: {"input": ..., "output": ...}, the shape ``flywheel import`` reads."""

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL_HINT = "run `make zoo-data` (it installs every zoo data set under .venv/zoo-data)"


class ZooDataMissing(Exception):
    """A zoo data set is not installed; the message names the missing path and `make zoo-data`."""


class ZooDataTooSmall(Exception):
    """A data set has fewer usable examples than the requested split sizes."""


@dataclass(frozen=True, slots=True)
class SplitSizes:
    """How many examples each part of a task gets."""

    train: int = 400
    """First cycle's examples: the 200-500 a user brings to start with."""
    more: int = 200
    """Second cycle's new examples (warm start on top of the first)."""
    held_out: int = 200
    """Never trained on: every model of the task is measured on these."""

    @property
    def total(self) -> int:
        return self.train + self.more + self.held_out


@dataclass(frozen=True, slots=True)
class ZooTask:
    """One real task with its data split three ways (no input is in two parts)."""

    name: str
    kind: str
    """"label" (answer is one of ``labels``) or "text" (free text, scored by token F1)."""
    labels: tuple[str, ...] | None
    instruction: str
    train: list[Example]
    more: list[Example]
    held_out: list[Example]
    source: str
    """Where the data comes from (package, version, licence), for reports."""

    @property
    def metric(self) -> str:
        """The default definition's primary metric: the one its gate decides on."""
        return TaskDefinition.model_validate(self.definition()).metric

    def definition(self) -> dict[str, object]:
        """The task-definition fields that differ between zoo tasks; all else is default."""
        fields: dict[str, object] = {
            "name": self.name,
            "kind": self.kind,
            "instruction": self.instruction,
        }
        if self.labels:
            fields["labels"] = list(self.labels)
        return fields


def require_dir(path: Path, what: str) -> Path:
    """``path`` if it is a directory; otherwise a ZooDataMissing that says how to install it."""
    if not path.is_dir():
        raise ZooDataMissing(f"{what} is not installed (no {path}): {INSTALL_HINT}")
    return path


def split(
    examples: Iterable[Example],
    sizes: SplitSizes,
    *,
    seed: int,
    group: Callable[[Example], str] | None = None,
    held_out_share: float = 0.0,
) -> tuple[list[Example], list[Example], list[Example]]:
    """(train, more, held_out), seeded and disjoint.

    Examples are first deduplicated by input (case and spacing ignored), so no input can be
    in two parts. Held-out examples are then drawn from whole groups (``group``: a book, a
    question id; by default each input is its own group), so near-copies inside a group
    (parallel passages, translations of one answer) never straddle training and evaluation.
    ``held_out_share`` spreads the held-out draw over at least that share of the data
    (e.g. several books rather than one long one)."""
    unique = _dedupe(examples)
    groups: dict[str, list[Example]] = {}
    for example in unique:
        groups.setdefault(group(example) if group else _key(example), []).append(example)
    rng = random.Random(seed)
    keys = list(groups)
    rng.shuffle(keys)
    pool_size = max(sizes.held_out, math.ceil(held_out_share * len(unique)))
    pool: list[Example] = []
    rest: list[Example] = []
    for key in keys:
        (pool if len(pool) < pool_size else rest).extend(groups[key])
    if len(pool) < sizes.held_out or len(rest) < sizes.train + sizes.more:
        raise ZooDataTooSmall(
            f"{len(unique)} distinct examples in {len(groups)} groups cannot give "
            f"{sizes.train} train + {sizes.more} more + {sizes.held_out} held-out; "
            "ask for smaller sizes"
        )
    held_out = rng.sample(pool, sizes.held_out)
    rng.shuffle(rest)
    train, more = rest[: sizes.train], rest[sizes.train : sizes.train + sizes.more]
    return _plain(train), _plain(more), _plain(held_out)


def _key(example: Example) -> str:
    return " ".join(example["input"].lower().split())


def _plain(examples: list[Example]) -> list[Example]:
    """Only input and output: sources may carry a group or a reference alongside."""
    return [{"input": e["input"], "output": e["output"]} for e in examples]


def _dedupe(examples: Iterable[Example]) -> list[Example]:
    seen: set[str] = set()
    unique = []
    for example in examples:
        key = _key(example)
        if key not in seen:
            seen.add(key)
            unique.append(example)
    return unique
