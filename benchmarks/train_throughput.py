"""Training throughput: the Flywheel LoRA recipe against a plain transformers Trainer + peft
script, same base model, same examples, same number of steps, in the same run. The recipe is
the default one (every setting auto, resolved from the training examples); the Trainer runs
its steps, learning rate and sequence length.

    .venv/bin/python benchmarks/train_throughput.py [--train 160] [--eval 80]

Figure: output-token-weighted tokens/s (supervised reply tokens per second of training), and
the held-out exact match each adapter reaches. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from _common import PeakRss, report

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch

from feedback.sample_data import load_spam_emails
from schemas.tasks import TrainingRecipe
from training.auto_recipe import ResolvedRecipe, measure, resolve
from training.chat_format import IGNORE_INDEX, PromptStyle, training_example
from training.checkpoints import load_model, load_tokenizer, resolve_base_model
from training.lora_recipe import run_training
from training.scoring import aggregate, score

STYLE = PromptStyle(
    "Decide whether this email is spam or ham (a legitimate email).", "label", ("spam", "ham")
)


def baseline(base: Path, examples: list[dict], recipe: ResolvedRecipe, out: Path) -> float:
    """What a first script looks like: Trainer, peft defaults (q/v on every layer), every
    sequence padded to the maximum length, loss on the whole sequence."""
    from peft import LoraConfig, get_peft_model
    from transformers import Trainer, TrainingArguments

    tokenizer = load_tokenizer(base)
    model = get_peft_model(
        load_model(base, torch.device("cpu")),
        LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, task_type="CAUSAL_LM"),
    )
    rows, output_tokens = [], 0
    seq, steps, batch = recipe.max_seq_len, recipe.steps, recipe.batch_size
    for e in examples:
        ids, labels = training_example(tokenizer, STYLE, e["input"], e["output"], recipe.lengths)
        output_tokens += sum(1 for x in labels if x != IGNORE_INDEX)
        pad = seq - len(ids)
        rows.append(
            {
                "input_ids": ids + [tokenizer.pad_token_id] * pad,
                "attention_mask": [1] * len(ids) + [0] * pad,
                "labels": ids + [-100] * pad,
            }
        )
    args = TrainingArguments(
        output_dir=str(out),
        max_steps=steps,
        per_device_train_batch_size=batch,
        learning_rate=recipe.learning_rate,
        logging_steps=10**6,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=_Rows(rows))
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    per_step_tokens = output_tokens / len(examples) * batch
    model.save_pretrained(out / "adapter")
    return per_step_tokens * steps / seconds


class _Rows(torch.utils.data.Dataset):
    def __init__(self, rows: list[dict]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        return {k: torch.tensor(v) for k, v in self.rows[index].items()}


def evaluate(base: Path, adapter: Path, held_out: list[dict], recipe: ResolvedRecipe) -> float:
    from peft import PeftModel

    model = PeftModel.from_pretrained(load_model(base, torch.device("cpu")), adapter)
    rows = score(model, load_tokenizer(base), STYLE, held_out, lengths=recipe.lengths)
    return aggregate(rows)["exact_match"]


def main(args: argparse.Namespace) -> None:
    rss = PeakRss()
    work = Path(tempfile.mkdtemp(prefix="flywheel-train-bench-"))
    base = resolve_base_model(
        os.environ.get("FLYWHEEL_BASE_MODEL"),
        work / "models"
        if os.environ.get("FLYWHEEL_HOME") is None
        else Path(os.environ["FLYWHEEL_HOME"]) / "models",
    )
    data = [
        {"id": e.id, "input": e.input, "output": e.output}
        for e in load_spam_emails(args.train + args.eval, seed=11)
    ]
    train, held_out = data[: args.train], data[args.train :]
    tokenizer = load_tokenizer(base)
    settings = resolve(TrainingRecipe(), measure(tokenizer, STYLE, train), kind="label").recipe

    rss.reset()
    _, recipe_adapter, recipe_report = run_training(
        settings,
        base_model=base,
        examples=train,
        style=STYLE,
        adapters_dir=work / "adapters",
        parent_adapter=None,
        device=torch.device("cpu"),
        metadata={},
    )
    recipe_rss = rss.peak_mb
    rss.reset()
    baseline_tps = baseline(base, train, settings, work / "baseline")
    baseline_rss = rss.peak_mb
    recipe_metric = evaluate(base, recipe_adapter, held_out, settings)
    baseline_metric = evaluate(base, work / "baseline" / "adapter", held_out, settings)
    report(
        {
            "steps": settings.steps,
            "batch": settings.batch_size,
            "max_seq_len": settings.max_seq_len,
            "train_examples": len(train),
            "eval_examples": len(held_out),
            "recipe_tokens_per_s": round(recipe_report.output_tokens_per_s, 2),
            "baseline_tokens_per_s": round(baseline_tps, 2),
            "speedup": round(recipe_report.output_tokens_per_s / baseline_tps, 2),
            "recipe_metric": round(recipe_metric, 3),
            "baseline_metric": round(baseline_metric, 3),
            "recipe_peak_rss_mb": recipe_rss,
            "baseline_peak_rss_mb": baseline_rss,
        }
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=int, default=160)
    parser.add_argument("--eval", type=int, default=80)
    main(parser.parse_args())
