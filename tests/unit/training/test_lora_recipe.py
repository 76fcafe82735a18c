"""The LoRA recipe on a tiny random Llama: what it writes, that it learns, warm starts."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch

from tests.model_fixtures import tiny_recipe
from training.chat_format import IGNORE_INDEX, PromptStyle, SequenceLengths, training_example
from training.checkpoints import Precision, load_model, load_tokenizer
from training.lora_recipe import (
    adapter_content_hash,
    run_training,
    select_training_examples,
    verify_adapter,
    warmup_cosine,
)
from training.scoring import aggregate, score

STYLE = PromptStyle("Is this message about money?", "label", ("yes", "no"))
EXAMPLES = [
    {
        "id": f"x{i}",
        "input": f"message {i}: " + ("send cash now" if i % 2 else "see you at lunch"),
        "output": "yes" if i % 2 else "no",
    }
    for i in range(32)
]
FAST = tiny_recipe(max_steps=12, batch_size=4, top_layers=2, learning_rate=5e-3)


def test_loss_is_taken_on_the_reply_only(tiny_model_dir):
    tokenizer = load_tokenizer(tiny_model_dir)
    ids, labels = training_example(tokenizer, STYLE, "hello " * 300, "yes", SequenceLengths(64, 8))
    assert len(ids) == len(labels) <= 64  # the input was cut, the reply kept
    reply = [t for t, label in zip(ids, labels, strict=True) if label != IGNORE_INDEX]
    assert tokenizer.decode(reply).startswith("yes")


def test_training_writes_a_content_addressed_peft_adapter(tiny_model_dir, tmp_path):
    adapter_id, path, report = run_training(
        FAST,
        base_model=tiny_model_dir,
        examples=EXAMPLES,
        style=STYLE,
        adapters_dir=tmp_path / "adapters",
        parent_adapter=None,
        device=torch.device("cpu"),
        metadata={"snapshot_id": "snap-1"},
    )
    assert {p.name for p in path.iterdir()} >= {
        "adapter_config.json",
        "adapter_model.safetensors",
        "metadata.json",
    }
    assert path.name == adapter_id == adapter_content_hash(path)
    metadata = json.loads((path / "metadata.json").read_text())
    assert metadata["snapshot_id"] == "snap-1" and metadata["training"]["steps"] == 12
    assert report.last_loss < report.first_loss, report.losses
    assert not list((tmp_path / "adapters").glob(".adapter-*"))  # no scratch left behind

    from peft import PeftModel

    model = PeftModel.from_pretrained(load_model(tiny_model_dir, torch.device("cpu")), path)
    rows = score(model, load_tokenizer(tiny_model_dir), STYLE, EXAMPLES[:8], lengths=FAST.lengths)
    assert {r["prediction"] for r in rows} <= {"yes", "no"}
    assert aggregate(rows)["n"] == 8 and "nll" in rows[0]

    # A warm start continues from the parent's weights and yields a different adapter.
    child_id, child, _ = run_training(
        FAST,
        base_model=tiny_model_dir,
        examples=EXAMPLES[:8],
        style=STYLE,
        adapters_dir=tmp_path / "adapters",
        parent_adapter=path,
        device=torch.device("cpu"),
        metadata={},
    )
    assert child_id != adapter_id and child.exists()


def test_corrupted_adapter_is_refused(tiny_model_dir, tmp_path):
    _, path, _ = run_training(
        FAST,
        base_model=tiny_model_dir,
        examples=EXAMPLES,
        style=STYLE,
        adapters_dir=tmp_path,
        parent_adapter=None,
        device=torch.device("cpu"),
        metadata={},
    )
    verify_adapter(path)
    broken = tmp_path / "broken" / path.name
    shutil.copytree(path, broken)
    weights = broken / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])  # truncated
    with pytest.raises(ValueError, match="corrupted"):
        verify_adapter(broken)


def test_replay_mixes_a_seeded_sample_of_old_examples():
    new = [{"id": f"n{i}"} for i in range(5)]
    old = [{"id": f"o{i}"} for i in range(50)]
    mixed = select_training_examples(new, old, replay_budget=10, seed=7)
    assert len(mixed) == 15 and all(n in mixed for n in new)
    assert mixed == select_training_examples(new, old, replay_budget=10, seed=7)


def test_fp16_training_scales_its_gradients_and_still_learns(tiny_model_dir, tmp_path, monkeypatch):
    """The fp16 path of a GPU without bf16, run on the CPU: the gradient scaler's scale,
    unscale, step and update wrap every step and the adapter still learns."""
    import training.lora_recipe

    fp16 = Precision(torch.float16, scale_gradients=True)
    monkeypatch.setattr(training.lora_recipe, "training_precision", lambda device: fp16)
    scales: list[float] = []
    update = torch.amp.GradScaler.update

    def recorded_update(scaler: torch.amp.GradScaler, new_scale: float | None = None) -> None:
        update(scaler, new_scale)
        scales.append(scaler.get_scale())

    monkeypatch.setattr(torch.amp.GradScaler, "update", recorded_update)
    _, _, report = run_training(
        FAST,
        base_model=tiny_model_dir,
        examples=EXAMPLES,
        style=STYLE,
        adapters_dir=tmp_path / "adapters",
        parent_adapter=None,
        device=torch.device("cpu"),
        metadata={},
    )
    assert len(scales) == FAST.steps and all(s > 1.0 for s in scales)  # scaled
    assert all(math.isfinite(loss) for loss in report.losses)
    assert report.last_loss < report.first_loss, report.losses


@pytest.mark.parametrize(
    ("warmup", "total"), [(5, 200), (5, 12), (0, 10), (1, 10), (5, 5), (5, 3), (8, 12)]
)
def test_the_schedule_warms_up_linearly_then_decays_on_a_cosine_to_a_tenth(warmup, total):
    """Step by step, the learning rate of the recipe's formula: (k + 1)/warmup of the peak
    during warm-up, then 0.1 + 0.9 * (1 + cos(pi * progress)) / 2 of it."""

    def intended(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([weight], lr=1e-3)
    schedule = warmup_cosine(optimizer, warmup=warmup, total=total)
    rates = []
    for _ in range(total):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates == pytest.approx([1e-3 * intended(k) for k in range(total)], rel=1e-9)
