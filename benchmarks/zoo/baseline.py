"""The hand-made baseline: what a user would do with the standard tools, on a zoo task.

A plain transformers ``Trainer`` with a peft LoRA, configured as issue 11 fixes it (see
``BaselineSettings``), trained on the task's training examples with nothing cut (full
sequences) and the loss on the answer only. It uses Flywheel's own chat format for prompts
and Flywheel's own scoring for the held-out metric, so the comparison with a Flywheel cycle
differs in the training recipe only: same prompt, same number.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil
import torch

from training.chat_format import (
    IGNORE_INDEX,
    PromptStyle,
    SequenceLengths,
    prompt_ids,
    target_ids,
)
from training.checkpoints import inference_dtype, load_model, load_tokenizer, pick_device
from training.scoring import aggregate, score

from .task import Example, ZooTask

NO_LIMIT = 1_000_000  # a prompt budget no input reaches: "full sequences"
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True, slots=True)
class BaselineSettings:
    """The recipe a user would write by hand from the peft examples (issue 11, item 6)."""

    rank: int = 16
    """LoRA rank on every targeted projection."""
    alpha: int = 32
    """LoRA scale (alpha / rank = 2)."""
    dropout: float = 0.05
    """peft's customary LoRA dropout."""
    learning_rate: float = 2e-4
    """The usual LoRA learning rate; Trainer's default linear decay, no warm-up."""
    epochs: float = 3.0
    """Passes over the training examples."""
    batch_size: int = 8
    """Examples per optimizer step: Trainer's default batch."""
    micro_batch_size: int | None = None
    """Examples per forward pass; gradients accumulate up to ``batch_size``, so the updates
    are the same whatever it is. None: the largest divisor of ``batch_size`` whose padded
    batch of the longest example stays within ``MICRO_BATCH_TOKENS`` (whole emails in batches
    of 8 took over 22 GB here and the kernel killed the run; one-line inputs one at a time
    left the two cores mostly idle)."""
    seed: int = 0
    """Seeds LoRA initialisation, dropout and shuffling."""

    def __post_init__(self) -> None:
        if self.micro_batch_size is not None and self.batch_size % self.micro_batch_size:
            raise ValueError(
                f"batch_size {self.batch_size} is not a multiple of micro_batch_size "
                f"{self.micro_batch_size}; pick a micro batch that divides it"
            )


DEFAULT_SETTINGS = BaselineSettings()
MICRO_BATCH_TOKENS = 4096
"""Padded tokens per forward pass when the micro batch is chosen automatically."""


def micro_batch(settings: BaselineSettings, longest: int) -> int:
    """The micro batch a run uses: the given one, or the largest divisor of the batch whose
    padded size (``longest`` tokens per row) fits ``MICRO_BATCH_TOKENS``; at least one."""
    if settings.micro_batch_size is not None:
        return settings.micro_batch_size
    divisors = [m for m in range(settings.batch_size, 0, -1) if settings.batch_size % m == 0]
    return next((m for m in divisors if m * longest <= MICRO_BATCH_TOKENS), 1)


@dataclass(frozen=True, slots=True)
class BaselineResult:
    """The baseline's held-out metric on one task, and what it cost."""

    task: str
    metric: str
    """The default definition's primary metric (``ZooTask.metric``), as Flywheel's scoring
    reports it."""
    value: float
    n_train: int
    n_held_out: int
    steps: int
    final_loss: float
    """The last logged training loss (answer tokens only)."""
    train_s: float
    eval_s: float
    wall_s: float
    """Loading the model, training and scoring: what the user waits for."""
    peak_rss_mb: float


def run_baseline(
    task: ZooTask,
    model_dir: Path,
    *,
    max_train: int | None = None,
    settings: BaselineSettings = DEFAULT_SETTINGS,
) -> BaselineResult:
    """Train the baseline on ``task.train`` (the first ``max_train`` of it if given) from the
    base model in ``model_dir`` and score it on ``task.held_out``."""
    examples = task.train[:max_train]
    style = PromptStyle(task.instruction, task.kind, tuple(task.labels or ()))
    with PeakRss() as rss:
        started = time.monotonic()
        tokenizer = load_tokenizer(model_dir)
        model = load_model(model_dir, pick_device())
        loaded = time.monotonic()
        model, steps, final_loss = train(model, tokenizer, style, examples, settings)
        trained = time.monotonic()
        # Scored with the weights' dtype Flywheel scores with (bf16 where it is native), so
        # the two differ in how they train, not in how fast they are scored.
        model = model.to(inference_dtype(model.device))
        longest_answer = max(len(target_ids(tokenizer, e["output"])) for e in examples)
        rows = score_uncut(model, tokenizer, style, task.held_out, max_new_tokens=longest_answer)
        finished = time.monotonic()
    return BaselineResult(
        task=task.name,
        metric=task.metric,
        value=aggregate(rows)[task.metric],
        n_train=len(examples),
        n_held_out=len(task.held_out),
        steps=steps,
        final_loss=final_loss,
        train_s=round(trained - loaded, 3),
        eval_s=round(finished - trained, 3),
        wall_s=round(finished - started, 3),
        peak_rss_mb=rss.peak_mb,
    )


def features(tokenizer: Any, style: PromptStyle, example: Example) -> dict[str, list[int]]:
    """The whole prompt (never cut) and the answer; labels mask the prompt with
    IGNORE_INDEX, so the loss is on the answer (and its end-of-turn token) only."""
    prompt = prompt_ids(tokenizer, style, example["input"], NO_LIMIT)
    answer = target_ids(tokenizer, example["output"])
    return {"input_ids": prompt + answer, "labels": [IGNORE_INDEX] * len(prompt) + answer}


def pad_batch(rows: Sequence[dict[str, list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pads a batch to its longest row; padding is masked from attention and loss."""
    width = max(len(row["input_ids"]) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        length = len(row["input_ids"])
        input_ids[i, :length] = torch.tensor(row["input_ids"])
        labels[i, :length] = torch.tensor(row["labels"])
        attention_mask[i, :length] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}


def train(
    model: Any,
    tokenizer: Any,
    style: PromptStyle,
    examples: Sequence[Example],
    settings: BaselineSettings,
) -> tuple[Any, int, float]:
    """(LoRA-wrapped model, optimizer steps, last logged loss) after ``Trainer.train()``."""
    from peft import LoraConfig, get_peft_model
    from transformers import Trainer, TrainingArguments, set_seed

    set_seed(settings.seed)  # before the LoRA matrices are initialised
    lora = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(LORA_TARGETS),
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora)
    rows = [features(tokenizer, style, e) for e in examples]
    micro = micro_batch(settings, max(len(row["input_ids"]) for row in rows))
    with tempfile.TemporaryDirectory(prefix="zoo-baseline-") as scratch:
        arguments = TrainingArguments(
            output_dir=scratch,
            per_device_train_batch_size=micro,
            gradient_accumulation_steps=settings.batch_size // micro,
            learning_rate=settings.learning_rate,
            num_train_epochs=settings.epochs,
            seed=settings.seed,
            logging_steps=5,
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            remove_unused_columns=False,  # the rows are already exactly the model's inputs
            dataloader_pin_memory=torch.cuda.is_available(),  # pinning is for GPU copies
        )
        trainer = Trainer(
            model=model,
            args=arguments,
            train_dataset=rows,
            data_collator=lambda rows: pad_batch(rows, tokenizer.pad_token_id),
        )
        output = trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return model, output.global_step, float(losses[-1] if losses else output.training_loss)


def score_uncut(
    model: Any,
    tokenizer: Any,
    style: PromptStyle,
    examples: Sequence[Example],
    *,
    max_new_tokens: int,
) -> list[dict[str, Any]]:
    """Flywheel's scoring, with a sequence length at which no held-out prompt is cut (the
    baseline trained on whole inputs, so it is measured on whole inputs)."""
    longest = max(len(prompt_ids(tokenizer, style, e["input"], NO_LIMIT)) for e in examples)
    lengths = SequenceLengths(
        max_seq_len=longest + max_new_tokens, max_answer_tokens=max_new_tokens
    )
    return score(model, tokenizer, style, examples, lengths=lengths)


def task_from_json(text: str) -> ZooTask:
    """A ZooTask written with ``dataclasses.asdict`` (the task zoo hands its tasks over so)."""
    import json

    fields = json.loads(text)
    labels = fields.get("labels")
    return ZooTask(**{**fields, "labels": tuple(labels) if labels else None})


class PeakRss:
    """This process's peak resident memory while the ``with`` block runs (sampled every
    0.1 s, and at both ends)."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.peak = 0

    def __enter__(self) -> PeakRss:
        self.peak = self._process.memory_info().rss
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            self.peak = max(self.peak, self._process.memory_info().rss)

    @property
    def peak_mb(self) -> float:
        return round(self.peak / 2**20, 1)


def main() -> None:
    """``python -m benchmarks.zoo.baseline TASK``: one baseline run, one JSON line."""
    import argparse
    import dataclasses
    import json
    import os
    import sys

    from training.checkpoints import resolve_base_model

    from .datasets import load_task

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", nargs="?", help="a zoo task name, e.g. spam")
    parser.add_argument(
        "--task-file", type=Path, default=None, help="a ZooTask as JSON instead of a name"
    )
    parser.add_argument("--max-train", type=int, default=None, help="train on the first N only")
    parser.add_argument("--max-held-out", type=int, default=None, help="score the first N only")
    parser.add_argument("--epochs", type=float, default=DEFAULT_SETTINGS.epochs)
    args = parser.parse_args()
    home = Path(os.environ.get("FLYWHEEL_HOME", ".flywheel"))
    model_dir = resolve_base_model(os.environ.get("FLYWHEEL_BASE_MODEL"), home / "models")
    settings = dataclasses.replace(DEFAULT_SETTINGS, epochs=args.epochs)
    if args.task_file is not None:
        task = task_from_json(args.task_file.read_text())
    elif args.task:
        task = load_task(args.task)
    else:
        parser.error("give a zoo task name or --task-file")
    task = dataclasses.replace(task, held_out=task.held_out[: args.max_held_out])
    result = run_baseline(task, model_dir, max_train=args.max_train, settings=settings)
    sys.stdout.write(json.dumps(dataclasses.asdict(result)) + "\n")


if __name__ == "__main__":
    main()
