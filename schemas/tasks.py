"""Task definitions: what a task asks of the model, when it retrains, and how it is gated.

Operators write these with ``flywheel task create`` or as YAML; the control plane stores them.
"""

from __future__ import annotations

from typing import Annotated, Literal

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


class TrainingPlan(BaseModel):
    """How much each incremental cycle trains."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    replay_budget: int = Field(
        default=200, ge=0, description="Older examples replayed beside the new ones (forgetting)."
    )
    epochs: float = Field(default=2.0, gt=0, le=20, description="Passes over new + replay.")
    max_steps: int = Field(default=200, ge=1, description="Upper bound on optimizer steps.")
    learning_rate: float = Field(default=2e-4, gt=0, le=1)
    eval_fraction: float = Field(
        default=0.2, gt=0, lt=1, description="Share of examples held out, by hash of their id."
    )


class TaskDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: TaskName
    instruction: Annotated[
        str, StringConstraints(min_length=1, max_length=4000, pattern=NO_NUL_PATTERN)
    ]
    kind: Literal["label", "text"]
    labels: list[Annotated[str, StringConstraints(min_length=1, max_length=100)]] | None = None
    primary_metric: Metric | None = Field(
        default=None, description="Defaults to exact_match for label tasks, chrf for text."
    )
    triggers: Triggers = Triggers()
    gate: GatePolicy = GatePolicy()
    training: TrainingPlan = TrainingPlan()

    @model_validator(mode="after")
    def _labels_match_kind(self) -> TaskDefinition:
        if self.kind == "label" and (not self.labels or len(set(self.labels)) < 2):
            raise ValueError("a label task needs at least two distinct labels (--labels a,b)")
        if self.kind == "text" and self.labels:
            raise ValueError("a text task takes no labels")
        if self.kind == "text" and self.primary_metric == "exact_match":
            raise ValueError("use token_f1, chrf or nll as the primary metric of a text task")
        return self

    @property
    def metric(self) -> Metric:
        return self.primary_metric or ("exact_match" if self.kind == "label" else "chrf")
