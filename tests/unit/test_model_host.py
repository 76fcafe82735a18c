"""The inference server's model host on the tiny Llama with real adapters: each request runs
with the adapter chosen when it starts, corrupted adapters are refused, and adapters beyond
the cap are unloaded least recently used first, never a champion."""

from __future__ import annotations

import asyncio
import shutil

import pytest
import torch

from services.inference_server.model_host import AdapterLoadError, ModelHost
from tests.model_fixtures import tiny_recipe
from training.chat_format import PromptStyle, SequenceLengths
from training.lora_recipe import run_training
from training.predict import predict

STYLE = PromptStyle("Is this message about money?", "label", ("yes", "no"))
LENGTHS = SequenceLengths(max_seq_len=64, max_answer_tokens=8)
EXAMPLES = [
    {
        "id": str(i),
        "input": f"note {i}: " + ("pay now" if i % 2 else "hello"),
        "output": "yes" if i % 2 else "no",
    }
    for i in range(16)
]


@pytest.fixture(scope="module")
def adapters(tiny_model_dir, tmp_path_factory):
    store = tmp_path_factory.mktemp("adapters")
    made = []
    for seed in range(3):
        settings = tiny_recipe(max_steps=2, batch_size=4, top_layers=2, seed=seed)
        adapter_id, path, _ = run_training(
            settings,
            base_model=tiny_model_dir,
            examples=EXAMPLES,
            style=STYLE,
            adapters_dir=store,
            parent_adapter=None,
            device=torch.device("cpu"),
            metadata={},
        )
        made.append((adapter_id, path))
    return made


def logits(model, tokenizer) -> torch.Tensor:
    """The next-token scores for one prompt: what an adapter, once applied, changes."""
    batch = tokenizer(["pay the bill"], return_tensors="pt")
    with torch.no_grad():
        return model(**batch).logits[0, -1].clone()


def test_requests_use_the_adapter_chosen_at_start_and_eviction_spares_champions(
    tiny_model_dir, adapters, tmp_path
):
    host = ModelHost(tiny_model_dir, max_adapters=2)
    host.load()
    (a, a_dir), (b, b_dir), (c, c_dir) = adapters

    async def scenario() -> None:
        answer = lambda model, tok: predict(model, tok, STYLE, ["pay the bill"], lengths=LENGTHS)[0]  # noqa: E731
        assert (await host.call(lambda: None, answer))[0] is None
        for adapter_id, directory in ((a, a_dir), (b, b_dir)):
            await host.ensure_loaded(adapter_id, directory)
            assert adapter_id in host.loaded
        await host.ensure_loaded(a, a_dir)  # loaded already: a no-op, not a second copy
        assert host.loaded == [a, b]
        # The adapter is really applied: its next-token scores differ from the base model's.
        _, with_a = await host.call(lambda: a, logits)
        _, base = await host.call(lambda: None, logits)
        assert not torch.equal(with_a, base)
        used, prediction = await host.call(lambda: b, answer)
        assert used == b and prediction.output in ("yes", "no")
        broken = tmp_path / c
        shutil.copytree(c_dir, broken)
        (broken / "adapter_model.safetensors").write_bytes(b"truncated")
        with pytest.raises(AdapterLoadError, match="corrupted"):
            await host.ensure_loaded(c, broken)
        with pytest.raises(AdapterLoadError, match="not loaded"):
            await host.call(lambda: c, answer)
        await host.ensure_loaded(c, c_dir)
        await host.pin({a, c})  # the champions
        assert sorted(host.loaded) == sorted([a, c])  # b: least recently used non-champion
        assert (await host.call(lambda: c, answer))[0] == c

    try:
        asyncio.run(scenario())
    finally:
        host.close()


def test_a_request_is_cut_and_sized_by_the_recipe_its_adapter_was_trained_with(
    tiny_model_dir, adapters
):
    host = ModelHost(tiny_model_dir)
    host.load()
    (a, a_dir), _, _ = adapters

    async def scenario() -> None:
        await host.ensure_loaded(a, a_dir)
        _, trained_with = await host.call(lambda: a, lambda m, t: host.recipe_in_use())
        assert trained_with == tiny_recipe(max_steps=2, batch_size=4, top_layers=2, seed=0)
        assert trained_with is not None and trained_with.lengths.max_seq_len == 64
        _, base = await host.call(lambda: None, lambda m, t: host.recipe_in_use())
        assert base is None

    try:
        asyncio.run(scenario())
    finally:
        host.close()
