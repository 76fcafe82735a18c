"""The child process of a cycle: train the candidate, score it and the champion.

    python -m training.cycle_worker JOB.json RESULT.json

Reads the job the control plane wrote (snapshot, task, base model, champion adapter),
prints progress as JSON lines on stdout, and writes RESULT.json only at the very end, so a
crash or kill at any point leaves no result and the control plane registers nothing.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from feedback.snapshots import load_snapshot_examples
from schemas.tasks import TaskDefinition
from training.auto_recipe import inputs_cut, measure, resolve
from training.chat_format import PromptStyle, SequenceLengths, style_of
from training.checkpoints import load_model, load_tokenizer, pick_device, resolve_base_model
from training.lora_recipe import run_training, select_training_examples, verify_adapter
from training.scoring import aggregate, score

MAX_EVAL_EXAMPLES = 400


def emit(progress: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(progress) + "\n")
    sys.stdout.flush()


def run(job: dict[str, Any]) -> dict[str, Any]:
    task = TaskDefinition.model_validate(job["task"])
    style = style_of(task)
    device = pick_device()
    base_path = resolve_base_model(
        job["base_model"],
        Path(job["models_dir"]),
        progress=lambda message: emit({"phase": "base_model", "message": message}),
    )
    rows = load_snapshot_examples(Path(job["snapshot_path"]))
    new = [r for r in rows if r["split"] == "train" and r["is_new"]]
    old = [r for r in rows if r["split"] == "train" and not r["is_new"]]
    evaluation = [r for r in rows if r["split"] == "eval"][:MAX_EVAL_EXAMPLES]
    regression = [r for r in rows if r["is_regression"]][:MAX_EVAL_EXAMPLES]
    parent = Path(job["champion_adapter_path"]) if job.get("champion_adapter_path") else None
    if parent is not None:
        verify_adapter(parent)  # never warm-start from a corrupted champion
    recipe = task.training
    examples = select_training_examples(
        new, old, replay_budget=recipe.replay_budget, seed=recipe.seed
    )
    tokenizer = load_tokenizer(base_path)
    resolution = resolve(
        recipe, measure(tokenizer, style, examples, seed=recipe.seed), kind=task.kind
    )
    settings = resolution.recipe
    data = {
        **resolution.evidence(),
        "eval_inputs_cut": inputs_cut(tokenizer, style, evaluation, settings.lengths),
    }
    emit({"phase": "recipe", **data})
    adapter_id, adapter_path, report = run_training(
        settings,
        base_model=base_path,
        examples=examples,
        style=style,
        adapters_dir=Path(job["adapters_dir"]),
        parent_adapter=parent,
        device=device,
        metadata={
            "task": task.name,
            "base_model": str(job["base_model"] or base_path.name),
            "snapshot_id": job["snapshot_id"],
            "parent_adapter": job["champion_adapter_id"],
            "new_examples": len(new),
            "replayed_examples": len(examples) - len(new),
            "data": {k: v for k, v in data.items() if k != "recipe"},
        },
        progress=emit,
    )
    scores = score_both(
        base_path, device, style, settings.lengths, adapter_path, parent, evaluation, regression
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
            "steps": report.steps,
            "first_loss": report.first_loss,
            "last_loss": report.last_loss,
            "seconds": report.seconds,
            **data,
        },
    }


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
        load_model(base_path, device), candidate, adapter_name="candidate"
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
