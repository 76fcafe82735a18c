"""Task definitions: what a task asks of the model, when it retrains, and how it is gated.

Operators write these with ``flywheel task create`` or as YAML; the control plane stores them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from schemas.events import NO_NUL_PATTERN, TaskName

Metric = Literal["exact_match", "token_f1", "chrf", "nll"]


class Triggers(BaseModel):
    """When a retraining cycle starts: whichever condition is met first."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_new_examples: int | None = Field(
        default=50, ge=1, description="Start when this many new ground-truth examples arrived."
    )
    cron: str | None = Field(
        default=None,
        max_length=200,
        description="Also start on this crontab schedule (UTC), e.g. '0 3 * * *'.",
    )

    @field_validator("cron")
    @classmethod
    def _valid_crontab(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(value, timezone="UTC")
        except ValueError as error:
            raise ValueError(
                f"not a crontab schedule ({error}); use five fields, e.g. '0 3 * * *'"
            ) from error
        return value


class CanaryPolicy(BaseModel):
    """Live trial of a candidate that passed the gate: it serves ``fraction`` of the task's
    requests until live outcomes decide (``training.live_decisions``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fraction: float = Field(
        default=0.1, gt=0, lt=1, description="Share of the task's requests the canary serves."
    )
    min_events: int = Field(
        default=100,
        ge=1,
        le=1_000_000,
        description="Judged answers (feedback or corrections) each side needs before a decision.",
    )
    max_duration_s: float = Field(
        default=86_400.0,
        gt=0,
        le=90 * 86_400.0,
        description="Longest the canary runs; then the default outcome applies.",
    )
    default: Literal["promote", "rollback"] = Field(
        default="promote",
        description="What happens when the longest duration passes without a decision.",
    )


class GatePolicy(BaseModel):
    """What a candidate adapter must show before it replaces the champion."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_eval_size: int = Field(default=30, ge=1, description="Fewer eval examples: no decision.")
    min_delta: float = Field(
        default=0.0,
        description="The 95% CI's lower bound of the improvement must exceed this.",
    )
    regression_tolerance: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Largest drop in pass rate allowed on the regression set.",
    )
    mode: Literal["auto", "manual"] = Field(
        default="manual", description="auto promotes; manual waits for an operator's approval."
    )
    canary: CanaryPolicy | None = Field(
        default=None,
        description="Set: a passing (or approved) candidate first serves as a canary on a "
        "fraction of live traffic and is promoted or rolled back by its live outcomes.",
    )


class RetentionPolicy(BaseModel):
    """How long the store keeps what never became ground truth; ``flywheel gc`` (and the
    scheduler, hourly) deletes it once it is older than this."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    raw_inference_days: float | None = Field(
        default=None,
        gt=0,
        le=36_500,
        description="Delete inference events (with their feedback, review items and rejected "
        "events of the task) this many days after they were stored, unless they became ground "
        "truth or training data. None: keep them forever.",
    )


Auto = Literal["auto"]
"""A setting worked out from the training data at each cycle (``training/auto_recipe.py``)."""

# What ``TrainingPlan`` stored before the recipe existed: every old task definition holds
# exactly these keys, with these values unless an operator changed them.
_OLD_PLAN_DEFAULTS: dict[str, float] = {
    "replay_budget": 200,
    "epochs": 2.0,
    "max_steps": 200,
    "learning_rate": 2e-4,
    "eval_fraction": 0.2,
}


class TrainingRecipe(BaseModel):
    """The whole training recipe of a task, in one place: training, scoring and serving all
    read it. ``auto`` (the default of every data-dependent field) is resolved from the
    cycle's training examples; the resolved recipe is stored with the adapter and in the
    cycle's evidence."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    learning_rate: Annotated[float, Field(gt=0, le=1)] | Auto = "auto"
    """AdamW peak step size. auto: the measured default (README, 'Training defaults')."""
    epochs: Annotated[float, Field(gt=0, le=50)] | Auto = "auto"
    """Passes over the cycle's examples (new + replay). auto: from the number of examples."""
    max_steps: Annotated[int, Field(ge=1, le=100_000)] | Auto = "auto"
    """Upper bound on optimizer steps, which bounds a cycle's wall time. auto: a cap that
    keeps a cycle within minutes on two CPU cores."""
    batch_size: int = Field(default=8, ge=1, le=256)
    """Examples per step; memory grows linearly with it and with max_seq_len."""
    rank: int = Field(default=8, ge=1, le=256)
    """Rank of the LoRA update matrices: the adapter's capacity (and its size on disk)."""
    alpha: int = Field(default=16, ge=1, le=1024)
    """Scale of the update (alpha / rank multiplies it); 2 x rank is the usual choice."""
    dropout: float = Field(default=0.05, ge=0, lt=1)
    """Dropout on the LoRA path: a little regularisation for small datasets."""
    top_layers: Annotated[int, Field(ge=1, le=1000)] | Literal["all"] = "all"
    """Adapt only the top N transformer layers (backward stops there, and the frozen layers'
    outputs are computed once per example), or all of them. all: measured to learn more in a
    cycle than the top 8 at about twice the cost of a step (README, 'Training defaults')."""
    target_modules: tuple[Annotated[str, StringConstraints(min_length=1, max_length=100)], ...] = (
        Field(default=("q_proj", "k_proj", "v_proj", "o_proj"), min_length=1, max_length=16)
    )
    """Projections that get an adapter; attention only keeps adapters small, merges cheap."""
    max_seq_len: Annotated[int, Field(ge=32, le=8192)] | Auto = "auto"
    """Tokens per example (prompt + answer). auto: covers the prompts of 95% of the training
    examples plus the longest answer, up to a cap; longer inputs are cut, answers never."""
    max_answer_tokens: Annotated[int, Field(ge=1, le=4096)] | Auto = "auto"
    """Tokens reserved for the answer, and the generation limit of scoring and serving.
    auto: the longest label, or the longest reference answer of the training examples."""
    input_truncation: Literal["middle", "left"] = "middle"
    """How an input that does not fit is cut: 'middle' keeps its beginning and end, 'left'
    keeps its end. The answer is never cut to make room."""
    class_balance: Literal["auto", "balanced", "none"] = "auto"
    """Label tasks: 'balanced' samples every label equally often in training. auto: balanced
    for label tasks, none for text tasks."""
    replay_budget: int = Field(default=200, ge=0, le=1_000_000)
    """Older examples replayed beside the new ones, so the adapter does not forget."""
    warmup_steps: int = Field(default=5, ge=0, le=10_000)
    """Linear warm-up before the cosine decay: steadier first steps on a warm start."""
    seed: int = Field(default=0, ge=0)
    """Seeds sampling, dropout and LoRA initialisation: the same data gives the same adapter."""
    eval_fraction: float = Field(default=0.2, gt=0, lt=1)
    """Share of examples held out for the gate, by hash of their id; never trained on."""

    @model_validator(mode="before")
    @classmethod
    def _from_old_plan(cls, data: Any) -> Any:
        """A task stored before the recipe existed holds the old plan's five keys, its
        defaults written out; those defaults become auto, values an operator set stay."""
        if isinstance(data, dict) and set(data) == set(_OLD_PLAN_DEFAULTS):
            return {k: v for k, v in data.items() if v != _OLD_PLAN_DEFAULTS[k]}
        return data

    @model_validator(mode="after")
    def _answer_fits(self) -> TrainingRecipe:
        seq, answer = self.max_seq_len, self.max_answer_tokens
        if isinstance(seq, int) and isinstance(answer, int) and answer > seq - 16:
            raise ValueError(
                f"max_answer_tokens {answer} leaves no room for the input in max_seq_len {seq}; "
                "raise max_seq_len or lower max_answer_tokens (or set either to auto)"
            )
        return self


TrainingPlan = TrainingRecipe
"""The recipe's former name, kept for imports written against it."""


class TaskDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: TaskName
    instruction: Annotated[
        str, StringConstraints(min_length=1, max_length=4000, pattern=NO_NUL_PATTERN)
    ]
    kind: Literal["label", "text"]
    labels: list[Annotated[str, StringConstraints(min_length=1, max_length=100)]] | None = None
    primary_metric: Metric | None = Field(
        default=None,
        description="Defaults to exact_match for label tasks, token_f1 for text (it weighs "
        "precision and recall alike; chrf favours answers longer than the references).",
    )
    triggers: Triggers = Triggers()
    gate: GatePolicy = GatePolicy()
    training: TrainingRecipe = TrainingRecipe()
    retention: RetentionPolicy = RetentionPolicy()
    drift_policy: Literal["alert", "rollback", "retrain"] = Field(
        default="alert",
        description="When the live champion's negative-feedback rate is worse than its own "
        "first window or its predecessor's last: alert only, also roll back, or also start a "
        "retraining cycle.",
    )
    erasure_policy: Literal["retrain", "rollback"] = Field(
        default="retrain",
        description="When `flywheel forget` erases data the champion learned from: retrain "
        "without it and go through the gate as usual, or roll back at once to the newest "
        "adapter that never saw it (or the base model).",
    )

    @model_validator(mode="after")
    def _labels_match_kind(self) -> TaskDefinition:
        if self.kind == "label" and (not self.labels or len(set(self.labels)) < 2):
            raise ValueError("a label task needs at least two distinct labels (--labels a,b)")
        if self.kind == "text" and self.labels:
            raise ValueError("a text task takes no labels")
        if self.kind == "text" and self.primary_metric == "exact_match":
            raise ValueError("use token_f1, chrf or nll as the primary metric of a text task")
        if self.kind == "text" and self.training.class_balance == "balanced":
            raise ValueError("training.class_balance balanced needs labels; use a label task")
        return self

    @property
    def metric(self) -> Metric:
        return self.primary_metric or ("exact_match" if self.kind == "label" else "token_f1")
