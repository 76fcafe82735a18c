"""Settings that come from the data: a task's recipe with every ``auto`` worked out.

``measure`` reads the cycle's training examples (never the eval split: held-out data does not
choose settings) into ``DataStats``; ``resolve`` is a pure function of those stats and the
task's recipe, so what a cycle will do can be unit-tested without a model. The result, a
``ResolvedRecipe``, is what training, scoring and serving run with; it is stored in the
adapter's metadata.json and in the cycle's evidence.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from schemas.tasks import TaskDefinition, TrainingRecipe
from training.chat_format import PromptStyle, SequenceLengths, prompt_overhead, target_ids

AUTO_LEARNING_RATE = 1e-3
"""Measured on tasks other than the demo's (README, 'Training defaults')."""
AUTO_EPOCHS = 3.0
"""Passes over the cycle's examples when neither steps nor epochs are given."""
MIN_AUTO_STEPS = 30
"""A cycle on a few dozen corrections still takes this many steps: with warm-up and cosine
decay, fewer barely move the adapter."""
MAX_AUTO_STEPS = 150
"""Bounds a cycle's training to a few minutes on two CPU cores for the 135M default model."""
TRAIN_TOKEN_BUDGET = 150 * 8 * 128
"""Cap on automatic steps x batch x max_seq_len: a step's cost grows with its length
(measured here on SmolLM2-135M, two cores: 0.9 s at 64 tokens, 1.4 s at 128, 2.6 s at 256,
3.9 s at 384 per step of 8), so long-input tasks take fewer, longer steps and a cycle's
training stays near what 150 steps of 128 tokens cost (50 steps at 384)."""
SEQ_LEN_COVERAGE = 0.95
"""Share of training examples whose whole input fits in the automatic sequence length."""
MAX_AUTO_SEQ_LEN = 384
"""Cap on the automatic sequence length: a step's cost grows with it (about 3x at 384
tokens against 96), and longer inputs are cut from the middle."""
MAX_AUTO_ANSWER_TOKENS = 256
"""Cap on the automatic answer length (generation limit of scoring and serving)."""
PAD_MULTIPLE = 32
"""Automatic sequence lengths are rounded up to a multiple of this (the batch padding)."""
MAX_MEASURED = 5000
"""Examples tokenised to measure lengths; a larger first import is sampled (seeded)."""


@dataclass(frozen=True, slots=True)
class DataStats:
    """What the automatic settings are computed from: the cycle's training examples."""

    examples: int
    """Training examples of the cycle (new + replay)."""
    prompt_tokens: tuple[int, ...]
    """Tokens of each measured example's whole prompt (system turn, input, template)."""
    answer_tokens: tuple[int, ...]
    """Tokens of each measured example's reference answer, end-of-turn included."""
    label_answer_tokens: int = 0
    """Label tasks: tokens of the longest label as an answer; 0 for text tasks."""
    label_counts: tuple[tuple[str, int], ...] = ()
    """Label tasks: examples per label, most frequent first."""


@dataclass(frozen=True, slots=True)
class ResolvedRecipe:
    """A recipe with every setting concrete: what one cycle trains, scores and serves with.
    Field meanings are those of ``schemas.tasks.TrainingRecipe``; ``steps`` is the number of
    optimizer steps the cycle runs."""

    learning_rate: float
    epochs: float
    steps: int
    batch_size: int
    rank: int
    alpha: int
    dropout: float
    top_layers: int | str
    """A number of top layers, or "all"."""
    target_modules: tuple[str, ...]
    max_seq_len: int
    max_answer_tokens: int
    input_truncation: str
    class_balance: str
    replay_budget: int
    warmup_steps: int
    seed: int

    @property
    def lengths(self) -> SequenceLengths:
        return SequenceLengths(self.max_seq_len, self.max_answer_tokens, self.input_truncation)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "target_modules": list(self.target_modules)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResolvedRecipe:
        """The recipe stored in an adapter's metadata.json."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        return cls(**{**values, "target_modules": tuple(values["target_modules"])})


@dataclass(frozen=True, slots=True)
class Resolution:
    """The resolved recipe, which settings were automatic, and what they cost the data."""

    recipe: ResolvedRecipe
    automatic: tuple[str, ...]
    """Fields that were ``auto`` in the task's recipe."""
    inputs_cut: int
    """Measured training examples whose input is cut to fit max_seq_len."""
    answers_cut: int
    """Measured training examples whose answer is longer than max_answer_tokens."""
    measured: int
    """Training examples measured (all of them, up to MAX_MEASURED)."""

    def evidence(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe.as_dict(),
            "automatic": list(self.automatic),
            "inputs_cut": self.inputs_cut,
            "answers_cut": self.answers_cut,
            "measured_examples": self.measured,
        }


def measure(
    tokenizer: Any, style: PromptStyle, examples: Sequence[dict], *, seed: int = 0
) -> DataStats:
    """Token lengths (and label counts) of the training examples a cycle will train on."""
    sample = list(examples)
    if len(sample) > MAX_MEASURED:
        sample = random.Random(seed).sample(sample, MAX_MEASURED)
    overhead = prompt_overhead(tokenizer, style)
    inputs = tokenizer([e["input"] for e in sample], add_special_tokens=False)["input_ids"]
    answers = [len(target_ids(tokenizer, e["output"])) for e in sample]
    label_tokens = max((len(target_ids(tokenizer, label)) for label in style.labels), default=0)
    counts = Counter(e["output"] for e in examples) if style.kind == "label" else Counter()
    return DataStats(
        examples=len(examples),
        prompt_tokens=tuple(overhead + len(ids) for ids in inputs),
        answer_tokens=tuple(answers),
        label_answer_tokens=label_tokens,
        label_counts=tuple(counts.most_common()),
    )


def resolve(recipe: TrainingRecipe, stats: DataStats, *, kind: str) -> Resolution:
    """Every ``auto`` of ``recipe`` worked out from ``stats``; values the task sets are kept."""
    answer = _answer_tokens(recipe, stats, kind)
    seq_len = _seq_len(recipe, stats, answer)
    epochs, steps = _schedule(recipe, stats.examples, seq_len)
    balance = recipe.class_balance
    if balance == "auto":
        balance = "balanced" if kind == "label" else "none"
    resolved = ResolvedRecipe(
        learning_rate=(
            AUTO_LEARNING_RATE if recipe.learning_rate == "auto" else float(recipe.learning_rate)
        ),
        epochs=epochs,
        steps=steps,
        batch_size=recipe.batch_size,
        rank=recipe.rank,
        alpha=recipe.alpha,
        dropout=recipe.dropout,
        top_layers=recipe.top_layers,
        target_modules=tuple(recipe.target_modules),
        max_seq_len=seq_len,
        max_answer_tokens=answer,
        input_truncation=recipe.input_truncation,
        class_balance=balance,
        replay_budget=recipe.replay_budget,
        warmup_steps=min(recipe.warmup_steps, max(0, steps - 1)),
        seed=recipe.seed,
    )
    budget = resolved.lengths.prompt_budget
    return Resolution(
        recipe=resolved,
        automatic=tuple(name for name, value in recipe if value == "auto"),
        inputs_cut=sum(1 for n in stats.prompt_tokens if n > budget),
        answers_cut=sum(1 for n in stats.answer_tokens if n > answer),
        measured=len(stats.prompt_tokens),
    )


def _answer_tokens(recipe: TrainingRecipe, stats: DataStats, kind: str) -> int:
    """The longest label, or the longest reference answer (capped): answers are never cut
    short by the automatic length."""
    if recipe.max_answer_tokens != "auto":
        return int(recipe.max_answer_tokens)
    if kind == "label":
        return max(stats.label_answer_tokens, 1)
    return min(max(stats.answer_tokens, default=1), MAX_AUTO_ANSWER_TOKENS)


def _seq_len(recipe: TrainingRecipe, stats: DataStats, answer: int) -> int:
    """Room for the answer plus the prompts of SEQ_LEN_COVERAGE of the examples, rounded up
    to the padding multiple, at most MAX_AUTO_SEQ_LEN (never less than the answer needs)."""
    if recipe.max_seq_len != "auto":
        return int(recipe.max_seq_len)
    prompts = sorted(stats.prompt_tokens) or [0]
    covering = prompts[max(0, math.ceil(SEQ_LEN_COVERAGE * len(prompts)) - 1)]
    wanted = math.ceil((covering + answer) / PAD_MULTIPLE) * PAD_MULTIPLE
    floor = math.ceil((answer + 2 * PAD_MULTIPLE) / PAD_MULTIPLE) * PAD_MULTIPLE
    return max(min(wanted, MAX_AUTO_SEQ_LEN), floor)


def _schedule(recipe: TrainingRecipe, examples: int, seq_len: int) -> tuple[float, int]:
    """(epochs, steps): AUTO_EPOCHS passes over the examples, at least MIN_AUTO_STEPS and at
    most MAX_AUTO_STEPS steps, and no more than TRAIN_TOKEN_BUDGET allows at ``seq_len``;
    a given epochs or max_steps replaces its automatic value."""
    if recipe.max_steps == "auto":
        budget = TRAIN_TOKEN_BUDGET // (recipe.batch_size * seq_len)
        cap = max(MIN_AUTO_STEPS, min(MAX_AUTO_STEPS, budget))
    else:
        cap = int(recipe.max_steps)
    per_epoch = max(1, examples) / recipe.batch_size
    if recipe.epochs == "auto":
        steps = min(cap, max(MIN_AUTO_STEPS, math.ceil(AUTO_EPOCHS * per_epoch)))
    else:
        steps = min(cap, max(1, math.ceil(float(recipe.epochs) * per_epoch)))
    return round(steps / per_epoch, 3), steps


def balanced_weights(labels: Sequence[str]) -> list[float]:
    """Sampling weight of each example so that every label is drawn equally often."""
    counts = Counter(labels)
    return [1.0 / counts[label] for label in labels]


def inputs_cut(
    tokenizer: Any, style: PromptStyle, examples: Sequence[dict], lengths: SequenceLengths
) -> int:
    """How many of ``examples`` have an input cut to fit ``lengths`` (evidence only: this
    is how the gate's eval examples are counted, never how settings are chosen)."""
    if not examples:
        return 0
    overhead = prompt_overhead(tokenizer, style)
    inputs = tokenizer([e["input"] for e in examples], add_special_tokens=False)["input_ids"]
    return sum(1 for ids in inputs if overhead + len(ids) > lengths.prompt_budget)


def lengths_without_data(
    recipe: TrainingRecipe, *, label_answer_tokens: int, default_answer_tokens: int
) -> SequenceLengths:
    """Lengths for a model that no cycle has resolved a recipe for (the base model serving a
    new task): the task's own values, else the longest label or ``default_answer_tokens``,
    and the automatic cap on the sequence length."""
    answer = recipe.max_answer_tokens
    if answer == "auto":
        answer = label_answer_tokens or default_answer_tokens
    seq_len = recipe.max_seq_len
    if seq_len == "auto":
        seq_len = max(MAX_AUTO_SEQ_LEN, int(answer) + 2 * PAD_MULTIPLE)
    return SequenceLengths(int(seq_len), int(answer), recipe.input_truncation)


def stored_recipe(adapter: Path) -> ResolvedRecipe | None:
    """The resolved recipe an adapter was trained with (its metadata.json); None for an
    adapter trained before recipes were stored."""
    try:
        metadata = json.loads((adapter / "metadata.json").read_text())
    except (OSError, ValueError):
        return None
    recipe = metadata.get("recipe")
    return ResolvedRecipe.from_dict(recipe) if isinstance(recipe, dict) else None


def serving_lengths(
    recipe: ResolvedRecipe | None,
    task: TaskDefinition,
    tokenizer: Any,
    *,
    default_answer_tokens: int,
) -> SequenceLengths:
    """How a model answers live inputs: an adapter as its recipe trained it; the base model
    by the task's own settings, the longest label, or ``default_answer_tokens``."""
    if recipe is not None:
        return recipe.lengths
    labels = [len(target_ids(tokenizer, label)) for label in task.labels or ()]
    return lengths_without_data(
        task.training,
        label_answer_tokens=max(labels, default=0),
        default_answer_tokens=default_answer_tokens,
    )
