"""The measurement behind the automatic learning rate (``training/auto_recipe.py``): one
default cycle per (task, learning rate) on the default model, every other setting automatic,
on tasks that are not the demo's, scored on held-out examples against the base model.

    .venv/bin/python benchmarks/default_learning_rate.py [--rates 3e-4,1e-3,3e-3] [--tasks ...]

This is the one benchmark that sets a learning rate: choosing the default is what it is for.
Tasks, from the construction FAQ (PyPI ``zaragoza-construction-faq``):
- ``faq-topic``: a label task, the question's category, over the FAQ's 8 largest categories;
- ``faq-answer``: a text task, the answer to the question (chrF).
The held-out split is by hash of the example id, as snapshots split; it never trains or
chooses anything. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

from _common import report, temporary_home

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch

from feedback.sample_data import load_construction_faq
from feedback.snapshots import split_of
from schemas.tasks import TaskDefinition, TrainingRecipe
from training.auto_recipe import measure, resolve
from training.chat_format import style_of
from training.checkpoints import load_model, load_tokenizer, resolve_base_model
from training.lora_recipe import run_training
from training.scoring import aggregate, score

EVAL_FRACTION = 0.3


def tasks() -> dict[str, tuple[TaskDefinition, list[dict], list[dict]]]:
    """name -> (task, train examples, held-out examples)."""
    faq = load_construction_faq()
    top = [c for c, _ in Counter(e.category for e in faq).most_common(8)]
    topic = TaskDefinition(
        name="faq-topic",
        kind="label",
        labels=top,
        instruction="Which topic of our construction FAQ is this customer question about?",
    )
    answer = TaskDefinition(
        name="faq-answer",
        kind="text",
        instruction="Answer the customer's question about our construction services.",
    )
    topic_rows = [
        {"id": e.id, "input": e.input, "output": e.category} for e in faq if e.category in top
    ]
    answer_rows = [{"id": e.id, "input": e.input, "output": e.output} for e in faq[:260]]
    return {
        "faq-topic": (topic, *_split(topic_rows)),
        "faq-answer": (answer, *_split(answer_rows)),
    }


def _split(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    train = [r for r in rows if split_of(r["id"], EVAL_FRACTION) == "train"]
    held_out = [r for r in rows if split_of(r["id"], EVAL_FRACTION) == "eval"]
    return train, held_out


def one_run(
    base: Path, task: TaskDefinition, train: list[dict], held_out: list[dict], rate: float | None
) -> dict[str, Any]:
    """Train with the automatic recipe (``rate`` its only given setting) and score held-out;
    ``rate`` None scores the base model."""
    style = style_of(task)
    tokenizer = load_tokenizer(base)
    recipe = TrainingRecipe(learning_rate=rate) if rate else TrainingRecipe()
    resolved = resolve(recipe, measure(tokenizer, style, train), kind=task.kind).recipe
    device = torch.device("cpu")
    started = time.perf_counter()
    if rate is None:
        model = load_model(base, device, inference=True)
        result: dict[str, Any] = {}
    else:
        from peft import PeftModel

        _, path, training = run_training(
            resolved,
            base_model=base,
            examples=train,
            style=style,
            adapters_dir=base.parent.parent / "adapters",
            parent_adapter=None,
            device=device,
            metadata={},
        )
        model = PeftModel.from_pretrained(load_model(base, device, inference=True), path)
        result = {
            "steps": training.steps,
            "first_loss": round(training.first_loss, 3),
            "last_loss": round(training.last_loss, 3),
        }
    metrics = aggregate(score(model, tokenizer, style, held_out, lengths=resolved.lengths))
    return {
        **result,
        task.metric: round(metrics[task.metric], 4),
        "seconds": round(time.perf_counter() - started, 1),
        "max_seq_len": resolved.max_seq_len,
        "max_answer_tokens": resolved.max_answer_tokens,
    }


def main(args: argparse.Namespace) -> None:
    home = temporary_home("flywheel-lr-")
    base = resolve_base_model(None, home / "models")
    torch.set_num_threads(args.threads)
    results: dict[str, Any] = {}
    for name, (task, train, held_out) in tasks().items():
        if args.tasks and name not in args.tasks:
            continue
        runs: dict[str, Any] = {"train": len(train), "held_out": len(held_out)}
        runs["base"] = one_run(base, task, train, held_out, None)
        report({name: runs})
        for rate in args.rates:
            runs[f"{rate:g}"] = one_run(base, task, train, held_out, rate)
            report({name: {f"{rate:g}": runs[f"{rate:g}"]}})
        results[name] = runs
    report(results)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--rates",
        type=lambda text: [float(x) for x in text.split(",")],
        default=[3e-4, 1e-3, 3e-3],
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--tasks", type=lambda text: text.split(","), default=None, help="faq-topic,faq-answer"
    )
    main(parser.parse_args())
