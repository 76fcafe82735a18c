"""The child process of a cycle: train the candidate, score it and the champion.

    python -m training.cycle_worker JOB.json RESULT.json

Reads the job the control plane wrote (snapshot, task, base model, champion adapter),
prints progress as JSON lines on stdout, and writes RESULT.json only at the very end, so a
crash or kill at any point leaves no result and the control plane registers nothing.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from feedback.snapshots import load_snapshot_examples
from schemas.tasks import TaskDefinition, TrainingRecipe
from training.auto_recipe import ResolvedRecipe, inputs_cut, measure, resolve, stored_recipe
from training.chat_format import (
    PromptStyle,
    SequenceLengths,
    style_of,
    target_ids,
)
from training.checkpoints import load_model, load_tokenizer, pick_device, resolve_base_model
from training.lora_recipe import (
    ACTIVATION_CACHE_MB,
    LoRARecipe,
    adapter_dir,
    run_training,
    select_training_examples,
    verify_adapter,
    write_metadata,
)
from training.recipe_search import (
    SearchPlan,
    Trial,
    TrialRunner,
    apply_tuned,
    dev_checkpoints,
    search,
)
from training.scoring import aggregate, score
from training.split_forward import ActivationCache

MAX_EVAL_EXAMPLES = 400


def emit(progress: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(progress) + "\n")
    sys.stdout.flush()


@dataclass(frozen=True)
class CycleData:
    """A snapshot's rows as a cycle uses them. Only ``examples`` (new + replayed training
    rows) ever train or choose settings; ``evaluation`` is the gate's alone."""

    new: list[dict]
    examples: list[dict]
    evaluation: list[dict]
    regression: list[dict]


def cycle_data(rows: list[dict], recipe: TrainingRecipe) -> CycleData:
    new = [r for r in rows if r["split"] == "train" and r["is_new"]]
    old = [r for r in rows if r["split"] == "train" and not r["is_new"]]
    return CycleData(
        new=new,
        examples=select_training_examples(
            new, old, replay_budget=recipe.replay_budget, seed=recipe.seed
        ),
        evaluation=[r for r in rows if r["split"] == "eval"][:MAX_EVAL_EXAMPLES],
        regression=[r for r in rows if r["is_regression"]][:MAX_EVAL_EXAMPLES],
    )


def run(job: dict[str, Any]) -> dict[str, Any]:
    task = TaskDefinition.model_validate(job["task"])
    style = style_of(task)
    device = pick_device()
    base_path = resolve_base_model(
        job["base_model"],
        Path(job["models_dir"]),
        progress=lambda message: emit({"phase": "base_model", "message": message}),
    )
    data = cycle_data(load_snapshot_examples(Path(job["snapshot_path"])), task.training)
    examples, evaluation = data.examples, data.evaluation
    parent = Path(job["champion_adapter_path"]) if job.get("champion_adapter_path") else None
    if parent is not None:
        verify_adapter(parent)  # never warm-start from a corrupted champion
    recipe = task.training
    tokenizer = load_tokenizer(base_path)
    resolution = resolve(
        recipe, measure(tokenizer, style, examples, seed=recipe.seed), kind=task.kind
    )
    start_from, cold_start = warm_start(parent, resolution.recipe)
    # With frozen lower layers (top_layers: N), the trials and the candidate share their
    # outputs: one lower pass per example for the whole cycle.
    activations = ActivationCache(ACTIVATION_CACHE_MB * 2**20)
    adapters_dir = Path(job["adapters_dir"])
    # The trials' adapters wait here until the winner is chosen; an unregistered directory,
    # so a worker killed mid-search leaves only what adapter GC collects.
    adapters_dir.mkdir(parents=True, exist_ok=True)
    trials_dir = Path(tempfile.mkdtemp(prefix=".trials-", dir=adapters_dir))
    settings, search_evidence = tune(
        resolution.recipe,
        SearchPlan.from_dict(job.get("search")),
        examples,
        metric=task.metric,
        run_trial=partial(
            train_trial,
            base_path=base_path,
            parent=start_from,
            device=device,
            style=style,
            metric=task.metric,
            activations=activations,
            trials_dir=trials_dir,
        ),
    )
    evidence = {
        **resolution.evidence(),
        "recipe": settings.as_dict(),
        "eval_inputs_cut": inputs_cut(tokenizer, style, evaluation, settings.lengths),
        "chance_loss": chance_loss(tokenizer, style),
        "warm_start_from": job["champion_adapter_id"] if start_from is not None else None,
        **({"cold_start": cold_start} if cold_start else {}),
        "search": search_evidence,
    }
    emit({"phase": "recipe", **{k: v for k, v in evidence.items() if k != "search"}})
    metadata = {
        "task": task.name,
        "base_model": str(job["base_model"] or base_path.name),
        "snapshot_id": job["snapshot_id"],
        "parent_adapter": job["champion_adapter_id"],
        "new_examples": len(data.new),
        "replayed_examples": len(examples) - len(data.new),
        "data": {k: v for k, v in evidence.items() if k not in ("recipe", "search")},
        "search": {k: v for k, v in search_evidence.items() if k != "trials"},
    }
    try:
        if search_evidence.get("winner_trial") is not None:
            adapter_id, adapter_path, trained = adopt_trial(
                search_evidence, trials_dir, adapters_dir, settings, metadata
            )
        else:
            adapter_id, adapter_path, report = run_training(
                settings,
                base_model=base_path,
                examples=examples,
                style=style,
                adapters_dir=adapters_dir,
                parent_adapter=start_from,
                device=device,
                metadata=metadata,
                progress=emit,
                activations=activations,
            )
            trained = {
                "steps": report.steps,
                "examples": report.examples,
                "first_loss": report.first_loss,
                "last_loss": report.last_loss,
                "seconds": report.seconds,
                "loss_curve": report.loss_curve(),
            }
    finally:
        shutil.rmtree(trials_dir, ignore_errors=True)
    scores = score_both(
        base_path,
        device,
        style,
        settings.lengths,
        adapter_path,
        parent,
        evaluation,
        data.regression,
    )
    metrics = {
        split: {side: aggregate(rows) for side, rows in sides.items()}
        for split, sides in scores.items()
    }
    metadata = json.loads((adapter_path / "metadata.json").read_text())
    metadata["eval"] = metrics["eval"]["candidate"]
    return {
        "adapter_id": adapter_id,
        "adapter_path": str(adapter_path),
        "base_model": str(job["base_model"] or base_path.name),
        "metadata": metadata,
        "scores": scores,
        "metrics": metrics,
        "training": {
            **{k: v for k, v in trained.items() if k != "examples"},
            "trained_examples": trained["examples"],
            **evidence,
        },
    }


ADAPTER_SHAPE = ("rank", "alpha", "target_modules", "top_layers")
"""Recipe fields a warm start inherits from the champion's adapter instead of the task's."""


def warm_start(parent: Path | None, recipe: ResolvedRecipe) -> tuple[Path | None, str | None]:
    """(adapter to start from, why the cycle starts from scratch instead). A warm start
    continues the champion's LoRA matrices, so it keeps their shape: when the task's recipe
    now asks for another rank, alpha, target modules or layers, the candidate is trained
    from scratch with them (on the replay sample too), and the evidence says so."""
    if parent is None:
        return None, None
    before = stored_recipe(parent)
    if before is None:
        return parent, None
    changed = [name for name in ADAPTER_SHAPE if getattr(before, name) != getattr(recipe, name)]
    if not changed:
        return parent, None
    return None, (
        f"the recipe changed the adapter's {', '.join(changed)} since the champion was "
        "trained: trained from scratch with the new shape, not warm-started"
    )


def tune(
    settings: ResolvedRecipe,
    plan: SearchPlan,
    examples: list[dict],
    *,
    metric: str,
    run_trial: TrialRunner,
) -> tuple[ResolvedRecipe, dict[str, Any]]:
    """The recipe the cycle trains with, and the search's evidence: the search's winner when
    the plan searches (on training examples only), else the tuned configuration it reuses."""
    if not plan.search:
        return apply_tuned(settings, plan.tuned), {
            "ran": False,
            "reason": plan.reason,
            "reused": plan.tuned,
            "tuned_in": plan.tuned_in,
        }
    evidence = {
        "reason": plan.reason,
        **search(examples, settings, metric=metric, run_trial=run_trial),
    }
    return apply_tuned(settings, evidence["winner"]), evidence


def adopt_trial(
    search_evidence: dict[str, Any],
    trials_dir: Path,
    adapters_dir: Path,
    settings: ResolvedRecipe,
    metadata: dict[str, Any],
) -> tuple[str, Path, dict[str, Any]]:
    """The search's winning trial becomes the cycle's candidate: its adapter moves into the
    adapter store with the cycle's metadata. Returns (adapter id, path, what training did)."""
    trial = search_evidence["trials"][search_evidence["winner_trial"]]
    adapter_id = trial["adapter_id"]
    trained = {
        "steps": trial["steps"],
        "examples": search_evidence["fit_examples"],
        "first_loss": trial["first_loss"],
        "last_loss": trial["last_loss"],
        "seconds": trial["seconds"],
    }
    source, target = trials_dir / adapter_id, adapter_dir(adapters_dir, adapter_id)
    write_metadata(source, adapter_id, settings, {**metadata, "training": trained})
    if not target.exists():  # ids are content: an existing one is this very adapter
        source.rename(target)
    return adapter_id, target, {**trained, "loss_curve": trial["loss_curve"]}


def train_trial(
    settings: ResolvedRecipe,
    fit: Sequence[dict],
    dev: Sequence[dict],
    *,
    base_path: Path,
    parent: Path | None,
    device: Any,
    style: PromptStyle,
    metric: str,
    activations: ActivationCache | None = None,
    trials_dir: Path,
) -> Trial:
    """One search trial: train ``settings`` on ``fit`` (from the champion when there is one,
    as the cycle itself would), score the adapter on ``dev``, and keep it in ``trials_dir``
    (the winner becomes the cycle's candidate)."""
    recipe = LoRARecipe(settings, base_path, device, activations)
    recipe.setup(parent)
    checkpoints = dev_checkpoints(settings.steps)
    dev_curve: list[list[float]] = []

    def measure_dev(step: int) -> None:
        if step in checkpoints:
            loss = recipe.reply_loss(dev, style)
            dev_curve.append([step, round(loss, 4)])

    report = recipe.train(
        fit,
        style,
        lambda p: emit({**p, "phase": "search", "learning_rate": settings.learning_rate}),
        after_step=measure_dev,
    )
    summary = aggregate(
        score(
            recipe.model,
            recipe.tokenizer,
            style,
            dev,
            lengths=settings.lengths,
            logprobs=recipe.reply_logprobs,
        )
    )
    adapter_id, _ = recipe.save_adapter(trials_dir, {"search_trial": True})
    recipe.cleanup()
    return Trial(
        learning_rate=settings.learning_rate,
        steps=report.steps,
        dev_metric=summary[metric],
        dev_nll=summary["nll"],
        first_loss=report.first_loss,
        last_loss=report.last_loss,
        seconds=round(report.seconds, 2),
        loss_curve=report.loss_curve(),
        dev_curve=dev_curve,
        adapter_id=adapter_id,
    )


def chance_loss(tokenizer: Any, style: PromptStyle) -> float | None:
    """Label tasks: the training loss (mean per answer token) of a model that has learned the
    answer format but not the task, i.e. guesses among the labels uniformly (what balanced
    sampling shows it): ln(#labels) spread over the label's tokens. None for text tasks."""
    if style.kind != "label" or not style.labels:
        return None
    tokens = [len(target_ids(tokenizer, label)) for label in style.labels]
    return round(math.log(len(style.labels)) / (sum(tokens) / len(tokens)), 4)


def score_both(
    base_path: Path,
    device: Any,
    style: PromptStyle,
    lengths: SequenceLengths,
    candidate: Path,
    champion: Path | None,
    evaluation: list[dict],
    regression: list[dict],
) -> dict[str, dict[str, list[dict]]]:
    """Candidate and champion (or the base model) on the same eval and regression examples,
    with the same prompts: both are cut to the candidate's recipe."""
    from peft import PeftModel

    tokenizer = load_tokenizer(base_path)
    model = PeftModel.from_pretrained(
        load_model(base_path, device, inference=True), candidate, adapter_name="candidate"
    )
    if champion is not None:
        model.load_adapter(champion, adapter_name="champion")
    total = 2 * (len(evaluation) + len(regression))
    done = 0

    def scored(rows: list[dict]) -> list[dict]:
        nonlocal done
        offset = done

        def progress(p: dict[str, Any]) -> None:
            emit({"phase": "evaluating", "step": offset + p["step"], "total": total})

        result = score(model, tokenizer, style, rows, lengths=lengths, progress=progress)
        done += len(rows)
        return result

    out: dict[str, dict[str, list[dict]]] = {"eval": {}, "regression": {}}
    model.set_adapter("candidate")
    out["eval"]["candidate"] = scored(evaluation)
    out["regression"]["candidate"] = scored(regression)
    if champion is not None:
        model.set_adapter("champion")
        out["eval"]["champion"] = scored(evaluation)
        out["regression"]["champion"] = scored(regression)
    else:
        with model.disable_adapter():
            out["eval"]["champion"] = scored(evaluation)
            out["regression"]["champion"] = scored(regression)
    return out


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    job_path, result_path = Path(argv[1]), Path(argv[2])
    result = run(json.loads(job_path.read_text()))
    partial = result_path.with_suffix(".partial")
    partial.write_text(json.dumps(result))
    partial.replace(result_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
