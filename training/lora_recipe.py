"""LoRA recipe: incremental fine-tuning of one task's adapter, read top to bottom.

setup()  loads the base model and either warm-starts from the champion adapter or creates a
         fresh LoRA on every layer (``top_layers: all``, the default) or the top N only.
train()  runs seeded, fixed-shape batches with loss on the reply tokens only.
save_adapter() writes a standard PEFT adapter directory named by the hash of its content.

Every layer by default: on the zoo's tasks the top 8 layers learned less in a cycle than all
30 (README, 'Training defaults'). A task that sets ``top_layers`` trades that for speed: with
no trainable weights below layer N-k, autograd stores no activations and computes no
gradients there, and since those lower layers never change, their output is computed once
per example and reused every epoch. In both cases the LM head runs only where a reply token
is predicted (``training/split_forward.py``).
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, SequentialLR

from training.adapter_files import adapter_content_hash
from training.adapter_files import adapter_dir as adapter_dir  # re-exported for callers
from training.adapter_files import verify_adapter as verify_adapter  # re-exported
from training.auto_recipe import PAD_MULTIPLE, ResolvedRecipe, balanced_weights
from training.chat_format import IGNORE_INDEX, PromptStyle, training_example
from training.checkpoints import load_model, load_tokenizer, training_precision
from training.predict import reply_logprobs
from training.split_forward import ActivationCache, SplitForward

log = logging.getLogger(__name__)
Progress = Callable[[dict[str, Any]], None]


MAX_CURVE_POINTS = 200
"""Points of a training run's loss curve kept in the cycle's evidence."""
ACTIVATION_CACHE_MB = 1024
"""Memory for the frozen lower layers' outputs, computed once per example and reused every
epoch (about 0.2 MB per example at 96 tokens on SmolLM2); beyond it they are recomputed."""


@dataclass
class TrainingReport:
    steps: int
    examples: int
    first_loss: float
    last_loss: float
    seconds: float
    output_tokens: int
    losses: list[float] = field(default_factory=list)

    @property
    def output_tokens_per_s(self) -> float:
        return self.output_tokens / self.seconds if self.seconds else 0.0

    def loss_curve(self, limit: int = MAX_CURVE_POINTS) -> list[list[float]]:
        """(step, loss) pairs for the learning-curve chart: every step, or the mean of each
        run of steps when there are more than ``limit`` (kept small in the evidence)."""
        return downsample(self.losses, limit)


def downsample(values: Sequence[float], limit: int) -> list[list[float]]:
    """At most ``limit`` (step, mean value) pairs over ``values`` (step 1 first); each pair
    stands for a run of consecutive steps and sits at the last step of its run."""
    if not values:
        return []
    runs = min(limit, len(values))
    bounds = [k * len(values) // runs for k in range(runs + 1)]
    return [
        [
            bounds[k + 1],
            round(sum(values[bounds[k] : bounds[k + 1]]) / (bounds[k + 1] - bounds[k]), 4),
        ]
        for k in range(runs)
    ]


def select_training_examples(
    new: Sequence[dict], old: Sequence[dict], *, replay_budget: int, seed: int
) -> list[dict]:
    """New examples plus a seeded sample of older ground truth, replayed so the adapter does
    not forget what it learned in earlier cycles."""
    rng = random.Random(seed)
    replay = rng.sample(list(old), min(replay_budget, len(old)))
    mixed = [*new, *replay]
    rng.shuffle(mixed)
    return mixed


class LoRARecipe:
    def __init__(
        self,
        settings: ResolvedRecipe,
        base_model: Path,
        device: torch.device,
        activations: ActivationCache | None = None,
    ) -> None:
        """``activations``: a cache shared with the other runs of a cycle (its search
        trials), keyed by example id; by default each run has its own."""
        self.settings = settings
        self.base_model = base_model
        self.device = device
        self.activations = activations
        self.model: Any = None
        self.tokenizer: Any = None

    def setup(self, parent_adapter: Path | None = None) -> None:
        from peft import LoraConfig, PeftModel, get_peft_model

        torch.manual_seed(self.settings.seed)
        self.tokenizer = load_tokenizer(self.base_model)
        base = load_model(self.base_model, self.device)
        if parent_adapter is not None:
            # Warm start: continue from the champion's weights, not from scratch.
            self.model = PeftModel.from_pretrained(base, parent_adapter, is_trainable=True)
            return
        layers = base.config.num_hidden_layers
        top = self.settings.top_layers
        top = layers if top == "all" else min(int(top), layers)
        config = LoraConfig(
            r=self.settings.rank,
            lora_alpha=self.settings.alpha,
            lora_dropout=self.settings.dropout,
            target_modules=list(self.settings.target_modules),
            layers_to_transform=list(range(layers - top, layers)),
            task_type="CAUSAL_LM",
        )
        self.model = get_peft_model(base, config)

    def train(
        self,
        examples: Sequence[dict],
        style: PromptStyle,
        progress: Progress | None = None,
        after_step: Callable[[int], None] | None = None,
    ) -> TrainingReport:
        """Train ``settings.steps`` steps; ``after_step(n)`` runs after step n (1-based) with
        the model in eval mode (a search trial measures its development loss there)."""
        s = self.settings
        # Tokenised when first drawn: a capped run over a large first import encodes only the
        # examples it reaches.
        encoded: dict[int, tuple[list[int], list[int]]] = {}

        def example(index: int) -> tuple[list[int], list[int]]:
            if index not in encoded:
                e = examples[index]
                encoded[index] = training_example(
                    self.tokenizer, style, e["input"], e["output"], s.lengths
                )
            return encoded[index]

        steps = s.steps
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=s.learning_rate, weight_decay=0.0)
        schedule = warmup_cosine(optimizer, warmup=s.warmup_steps, total=steps)
        precision = training_precision(self.device)
        # Disabled (CPU, bf16) the scaler passes the loss and the optimizer step through as is.
        scaler = torch.amp.GradScaler(self.device.type, enabled=precision.scale_gradients)
        shared = self._shares_cache(examples)
        split = self._split_forward(shared, ACTIVATION_CACHE_MB * 2**20)
        # A shared cache outlives this run: it knows examples by id, not by position here.
        key_of = (lambda i: str(examples[i]["id"])) if shared else (lambda i: i)
        rng = random.Random(s.seed)
        draw = epoch_order(examples, balanced=s.class_balance == "balanced")
        order: list[int] = []
        losses: list[float] = []
        output_tokens = 0
        self.model.train()
        started = time.perf_counter()
        for step in range(steps):
            if len(order) < s.batch_size:  # next epoch: a fresh seeded draw
                order.extend(draw(rng))
            keys = order[: s.batch_size]
            del order[: s.batch_size]
            input_ids, labels, attention = self._collate([example(i) for i in keys])
            output_tokens += int((labels != IGNORE_INDEX).sum())
            with self._autocast():
                if split is not None:
                    loss = split.loss([key_of(i) for i in keys], input_ids, labels, attention)
                else:
                    loss = self.model(
                        input_ids=input_ids, attention_mask=attention, labels=labels
                    ).loss
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            scaler.step(optimizer)  # skipped when fp16 gradients overflowed
            scaler.update()
            schedule.step()
            # flush the gradients as soon as we can, no need for this memory anymore
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
            if after_step is not None:
                with torch.no_grad():
                    after_step(step + 1)
                self.model.train()
            if progress:
                progress(
                    {
                        "phase": "training",
                        "step": step + 1,
                        "total": steps,
                        "loss": round(losses[-1], 4),
                    }
                )
        seconds = time.perf_counter() - started
        head, tail = losses[: max(1, len(losses) // 5)], losses[-max(1, len(losses) // 5) :]
        return TrainingReport(
            steps,
            len(examples),
            sum(head) / len(head),
            sum(tail) / len(tail),
            seconds,
            output_tokens,
            losses,
        )

    @torch.no_grad()
    def reply_loss(
        self, examples: Sequence[dict], style: PromptStyle, batch_size: int = 16
    ) -> float:
        """Mean reply-token loss on ``examples`` (teacher-forced, dropout off): a search
        trial's development loss, cheap enough to measure several times per trial. It goes
        through the split forward like training, so with the cycle's shared cache the frozen
        lower layers run once per example for the whole cycle, and the LM head only where a
        reply token is predicted."""
        s = self.settings
        shared = self._shares_cache(examples)
        split = self._split_forward(shared, 0)
        self.model.eval()
        total, count = 0.0, 0
        for start in range(0, len(examples), batch_size):
            chunk = examples[start : start + batch_size]
            input_ids, labels, attention = self._collate(
                [
                    training_example(self.tokenizer, style, e["input"], e["output"], s.lengths)
                    for e in chunk
                ]
            )
            tokens = int((labels[:, 1:] != IGNORE_INDEX).sum())
            keys = [str(e["id"]) if shared else start + i for i, e in enumerate(chunk)]
            with self._autocast():
                if split is not None:
                    loss = split.loss(keys, input_ids, labels, attention)
                else:
                    loss = self.model(
                        input_ids=input_ids, attention_mask=attention, labels=labels
                    ).loss
            total += float(loss) * tokens
            count += tokens
        return total / max(1, count)

    @torch.no_grad()
    def reply_logprobs(
        self,
        examples: Sequence[dict],
        pairs: Sequence[tuple[list[int], list[int]]],
        first_token_ids: Sequence[int] = (),
    ) -> tuple[list[tuple[float, int]], list[list[float]]]:
        """``predict.reply_logprobs`` of ``pairs`` (the prompts and references of
        ``examples``, as scoring cuts them) through the split forward and the cycle's shared
        cache, so scoring a trial on its development split runs no frozen layer again. Only
        pairs that are exactly the tokens training used may share the cache by example id;
        otherwise (a reference longer than the answer length) it is the plain pass."""
        if not pairs:
            return [], []
        s = self.settings
        pad = self.tokenizer.pad_token_id
        split = self._split_forward(True, 0) if self._shares_cache(examples) else None
        if split is None or any(len(target) > s.max_answer_tokens for _, target in pairs):
            return reply_logprobs(self.model, pairs, pad, len(pairs), first_token_ids)
        self.model.eval()
        input_ids, labels, attention = self._collate(
            [(prompt + target, [IGNORE_INDEX] * len(prompt) + target) for prompt, target in pairs]
        )
        with self._autocast():
            rows = split.reply_log_probs(
                [str(e["id"]) for e in examples], input_ids, labels, attention
            )
        sums, firsts = [], []
        for logprobs, (_, target) in zip(rows, pairs, strict=True):
            where = logprobs.device
            picked = logprobs[
                torch.arange(len(target), device=where), torch.tensor(target, device=where)
            ]
            sums.append((float(picked.sum()), len(target)))
            firsts.append([float(logprobs[0, t]) for t in first_token_ids])
        return sums, firsts

    def _shares_cache(self, examples: Sequence[dict]) -> bool:
        return self.activations is not None and all("id" in e for e in examples)

    def _split_forward(self, shared: bool, private_bytes: int) -> SplitForward | None:
        """The split forward over the cycle's shared cache (``shared``) or a private one of
        ``private_bytes``; None for models it does not apply to."""
        if not SplitForward.applies_to(self.model):
            return None
        s = self.settings
        return SplitForward(
            self.model,
            cache=self.activations if shared else ActivationCache(private_bytes),
            context=(str(self.base_model), s.max_seq_len, s.max_answer_tokens, s.input_truncation),
        )

    def _autocast(self) -> Any:
        precision = training_precision(self.device)
        return torch.autocast(
            self.device.type,
            dtype=precision.autocast or torch.float32,
            enabled=precision.autocast is not None,
        )

    def _collate(self, batch: list[tuple[list[int], list[int]]]) -> tuple[torch.Tensor, ...]:
        """Right-pad to a multiple of PAD_MULTIPLE: few shapes, little waste."""
        longest = max(len(ids) for ids, _ in batch)
        width = math.ceil(longest / PAD_MULTIPLE) * PAD_MULTIPLE
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, (ids, labs) in enumerate(batch):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            labels[row, : len(labs)] = torch.tensor(labs)
            attention[row, : len(ids)] = 1
        return input_ids.to(self.device), labels.to(self.device), attention.to(self.device)

    def save_adapter(self, adapters_dir: Path, metadata: dict[str, Any]) -> tuple[str, Path]:
        """Write the adapter, name it by its content hash, return (adapter_id, path)."""
        adapters_dir.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".adapter-", dir=adapters_dir))
        try:
            self.model.save_pretrained(scratch)
            adapter_id = adapter_content_hash(scratch)
            write_metadata(scratch, adapter_id, self.settings, metadata)
            target = adapters_dir / adapter_id
            if target.exists():  # the same content was trained before: ids are content
                shutil.rmtree(scratch)
            else:
                scratch.rename(target)
            return adapter_id, target
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise

    def cleanup(self) -> None:
        self.model = None


def write_metadata(
    directory: Path, adapter_id: str, settings: ResolvedRecipe, metadata: dict[str, Any]
) -> None:
    """An adapter's metadata.json: its id, the recipe it was trained with, and the caller's
    lineage and training figures (not part of the content hash, so it can be completed)."""
    (directory / "metadata.json").write_text(
        json.dumps(
            {"adapter_id": adapter_id, "recipe": settings.as_dict(), **metadata},
            indent=2,
            default=str,
        )
    )


def warmup_cosine(
    optimizer: torch.optim.Optimizer, *, warmup: int, total: int, floor: float = 0.1
) -> torch.optim.lr_scheduler.LRScheduler:
    """The learning rate climbs linearly over ``warmup`` steps (lr/warmup, 2 lr/warmup, ...,
    lr), then follows a cosine down to ``floor`` x lr at step ``total``: small first steps
    keep a warm-started adapter steady, and the floor keeps the last steps learning."""
    peak = optimizer.param_groups[0]["lr"]
    cosine = CosineAnnealingLR(optimizer, T_max=max(1, total - warmup), eta_min=floor * peak)
    if warmup == 0:
        return cosine
    ramp = LinearLR(optimizer, start_factor=1 / warmup, end_factor=1.0, total_iters=warmup - 1)
    return SequentialLR(optimizer, [ramp, cosine], milestones=[warmup])


def epoch_order(
    examples: Sequence[dict], *, balanced: bool
) -> Callable[[random.Random], list[int]]:
    """One epoch's order of example indices, drawn with the trainer's seeded generator:
    a shuffle of all examples, or, balanced, as many draws (with replacement) in which every
    label is equally likely. Balanced sampling, not a weighted loss: the loss code stays one
    path for every task, and the model can no longer lower its loss by learning the majority
    label alone (answering 'A' to all of a 2:1 set is worth 0.64 nats against chance's 0.69,
    the shortcut a short cycle stops in), so it has to read the input."""
    indices = list(range(len(examples)))
    if not balanced:

        def shuffled(rng: random.Random) -> list[int]:
            refill = indices.copy()
            rng.shuffle(refill)
            return refill

        return shuffled
    weights = balanced_weights([e["output"] for e in examples])
    return lambda rng: rng.choices(indices, weights=weights, k=len(indices))


def run_training(
    settings: ResolvedRecipe,
    *,
    base_model: Path,
    examples: Sequence[dict],
    style: PromptStyle,
    adapters_dir: Path,
    parent_adapter: Path | None,
    device: torch.device,
    metadata: dict[str, Any],
    progress: Progress | None = None,
    activations: ActivationCache | None = None,
) -> tuple[str, Path, TrainingReport]:
    recipe = LoRARecipe(settings, base_model, device, activations)
    recipe.setup(parent_adapter)
    report = recipe.train(examples, style, progress)
    adapter_id, path = recipe.save_adapter(
        adapters_dir,
        {
            **metadata,
            "training": {
                "steps": report.steps,
                "examples": report.examples,
                "first_loss": report.first_loss,
                "last_loss": report.last_loss,
                "seconds": round(report.seconds, 2),
            },
        },
    )
    recipe.cleanup()
    return adapter_id, path, report
