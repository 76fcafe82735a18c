"""Models for tests: the base model's tokenizer (read from the bundled GGUF once per session)
on a tiny random Llama, so training and evaluation code runs in seconds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from schemas.tasks import TrainingRecipe
from training.auto_recipe import DataStats, ResolvedRecipe, resolve
from training.checkpoints import BUNDLED_GGUF, bundled_gguf_dir
from training.tiny_llama import make_tiny_llama

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import AutoTokenizer

    root = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = AutoTokenizer.from_pretrained(bundled_gguf_dir(), gguf_file=BUNDLED_GGUF)
    tokenizer.save_pretrained(root / "tokenizer")
    return make_tiny_llama(root / "model", root / "tokenizer")


def tiny_recipe(**given: object) -> ResolvedRecipe:
    """A resolved recipe for fast tests on the tiny Llama: the task recipe's defaults with
    short fixed lengths and whatever a test gives (max_steps=12, ...)."""
    recipe = TrainingRecipe.model_validate({"max_seq_len": 64, "max_answer_tokens": 8, **given})
    stats = DataStats(examples=32, prompt_tokens=(), answer_tokens=())
    return resolve(recipe, stats, kind="label").recipe
