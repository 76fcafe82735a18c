"""A tiny random Llama with the base model's tokenizer: trains a LoRA step in ~0.04 s, so
tests of the training code run in seconds. It learns; it knows nothing."""

from __future__ import annotations

from pathlib import Path

import torch


def make_tiny_llama(directory: Path, tokenizer_dir: Path, *, seed: int = 0) -> Path:
    """Write a 2-layer, hidden-64 Llama (deterministic for ``seed``) with the given tokenizer."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    if (directory / "config.json").exists():
        return directory
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
