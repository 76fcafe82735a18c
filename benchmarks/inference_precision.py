"""Scoring speed of the weights' dtype Flywheel scores and serves with, against fp32 weights,
in the same run: the bundled base model scores real examples of a text task (construction
FAQ answers, greedy generation) and of a label task (spam or ham, one forward pass each),
once with fp32 weights and once with ``inference_dtype`` (bf16 where the hardware runs it
natively, else fp32, when the ratio is 1 by construction).

    .venv/bin/python benchmarks/inference_precision.py

Last line: one JSON object with each task's seconds, speed-up and metric under both dtypes,
and the peak RSS of each pass.
"""

from __future__ import annotations

import gc
import os
import time
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch
from _common import PeakRss, report, temporary_home

from feedback.sample_data import load_construction_faq, load_spam_emails
from schemas.tasks import TaskDefinition
from training.auto_recipe import serving_lengths
from training.chat_format import style_of
from training.checkpoints import (
    inference_dtype,
    load_model,
    load_tokenizer,
    pick_device,
    resolve_base_model,
)
from training.scoring import aggregate, score

TEXT_EXAMPLES = 32
LABEL_EXAMPLES = 64
TASKS = {
    "faq-answer": {
        "name": "faq-answer",
        "kind": "text",
        "instruction": "Answer the customer's question about the construction company.",
    },
    "spam": {
        "name": "spam",
        "kind": "label",
        "labels": ["spam", "ham"],
        "instruction": "Decide whether this email is spam or ham (a legitimate email).",
    },
}


def examples(name: str) -> list[dict[str, Any]]:
    rows = (
        load_construction_faq(TEXT_EXAMPLES, seed=3)
        if name == "faq-answer"
        else load_spam_emails(LABEL_EXAMPLES, seed=3)
    )
    return [{"id": r.id, "input": r.input, "output": r.output} for r in rows]


def timed_score(base: Any, tokenizer: Any, inference: bool, name: str, rss: PeakRss) -> dict:
    task = TaskDefinition.model_validate(TASKS[name])
    lengths = serving_lengths(None, task, tokenizer, default_answer_tokens=64)
    model = load_model(base, pick_device(), inference=inference)
    rss.reset()
    started = time.perf_counter()
    rows = score(model, tokenizer, style_of(task), examples(name), lengths=lengths)
    seconds = time.perf_counter() - started
    del model
    gc.collect()
    return {
        "seconds": round(seconds, 1),
        "metric": round(aggregate(rows)[task.metric], 4),
        "peak_rss_mb": rss.peak_mb,
    }


def main() -> None:
    rss = PeakRss()
    home = temporary_home("flywheel-precision-")
    base = resolve_base_model(None, home / "models")
    tokenizer = load_tokenizer(base)
    results: dict[str, Any] = {"inference_dtype": str(inference_dtype(pick_device()))}
    for name in TASKS:
        fp32 = timed_score(base, tokenizer, False, name, rss)
        served = timed_score(base, tokenizer, True, name, rss)
        results[name] = {
            "examples": TEXT_EXAMPLES if name == "faq-answer" else LABEL_EXAMPLES,
            "fp32": fp32,
            "inference": served,
            "speedup": round(fp32["seconds"] / max(served["seconds"], 1e-9), 2),
        }
    report(results)


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
