"""The split forward pass gives the plain forward pass's loss and gradients, cached or not."""

from __future__ import annotations

import pytest
import torch

from tests.model_fixtures import tiny_recipe
from training.chat_format import PromptStyle, prompt_ids, target_ids, training_example
from training.checkpoints import load_model, load_tokenizer
from training.lora_recipe import LoRARecipe
from training.predict import reply_logprobs
from training.scoring import score
from training.split_forward import ActivationCache, SplitForward

STYLE = PromptStyle("Is this message about money?", "label", ("yes", "no"))
TEXTS = [("send cash now " * (i + 1), "yes" if i % 2 else "no") for i in range(6)]


def _recipe(tiny_model_dir, top_layers: int) -> tuple[LoRARecipe, list]:
    recipe = LoRARecipe(
        tiny_recipe(top_layers=top_layers, dropout=0.0),
        tiny_model_dir,
        torch.device("cpu"),
    )
    recipe.setup()
    tokenizer = load_tokenizer(tiny_model_dir)
    encoded = [training_example(tokenizer, STYLE, x, y, recipe.settings.lengths) for x, y in TEXTS]
    return recipe, encoded


def _grads(model) -> list[torch.Tensor]:
    return [p.grad.clone() for p in model.parameters() if p.requires_grad]


def test_same_loss_and_gradients_as_the_plain_forward(tiny_model_dir):
    recipe, encoded = _recipe(tiny_model_dir, top_layers=1)  # layer 0 frozen, layer 1 adapted
    model = recipe.model
    split = SplitForward(model, cache_bytes=2**24)
    assert SplitForward.applies_to(model) and split.split == 1
    keys = [0, 1, 2, 3]
    input_ids, labels, attention = recipe._collate([encoded[k] for k in keys])

    plain = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
    plain.backward()
    plain_grads = _grads(model)
    model.zero_grad()

    fresh = split.loss(keys, input_ids, labels, attention)
    fresh.backward()
    assert torch.allclose(fresh, plain, atol=1e-5), (fresh, plain)
    for mine, theirs in zip(_grads(model), plain_grads, strict=True):
        assert torch.allclose(mine, theirs, atol=1e-5)
    assert set(split.cache) == set(keys) and split.cached_bytes > 0

    # A batch mixing cached and new examples, in another order, still matches.
    keys = [5, 2, 4, 0]
    input_ids, labels, attention = recipe._collate([encoded[k] for k in keys])
    model.zero_grad()
    mixed = split.loss(keys, input_ids, labels, attention)
    plain = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
    assert torch.allclose(mixed, plain, atol=1e-5), (mixed, plain)


def test_cache_budget_is_respected(tiny_model_dir):
    recipe, encoded = _recipe(tiny_model_dir, top_layers=1)
    split = SplitForward(recipe.model, cache_bytes=1)  # too small for one example
    input_ids, labels, attention = recipe._collate(encoded[:2])
    split.loss([0, 1], input_ids, labels, attention)
    assert not split.cache and split.cached_bytes == 0


def test_first_layer_adapted_starts_from_the_embeddings(tiny_model_dir):
    recipe, encoded = _recipe(tiny_model_dir, top_layers=2)  # every layer adapted
    split = SplitForward(recipe.model, cache_bytes=2**24)
    assert split.split == 0 and split.cache_bytes == 0
    input_ids, labels, attention = recipe._collate(encoded[:3])
    plain = recipe.model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
    assert torch.allclose(split.loss([0, 1, 2], input_ids, labels, attention), plain, atol=1e-5)


def test_models_outside_the_llama_family_take_the_plain_path(tiny_model_dir):
    model = load_model(tiny_model_dir, torch.device("cpu"))
    assert SplitForward.applies_to(model)
    model.config.model_type = "gemma"  # scales inputs_embeds inside its forward
    assert not SplitForward.applies_to(model)


def count_lower_passes(monkeypatch) -> list[int]:
    """From now on, the number of rows of every lower pass the split forward runs."""
    lower_rows: list[int] = []
    original = SplitForward._lower_pass

    def counting(self, input_ids, attention):
        lower_rows.append(len(input_ids))
        return original(self, input_ids, attention)

    monkeypatch.setattr(SplitForward, "_lower_pass", counting)
    return lower_rows


def _train(tiny_model_dir, examples, activations=None) -> tuple[list[torch.Tensor], float]:
    recipe = LoRARecipe(
        tiny_recipe(top_layers=1, dropout=0.0, max_steps=4, batch_size=3, class_balance="none"),
        tiny_model_dir,
        torch.device("cpu"),
        activations,
    )
    recipe.setup()
    report = recipe.train(examples, STYLE)
    return [p.detach().clone() for p in recipe.model.parameters() if p.requires_grad], (
        report.last_loss
    )


def test_runs_of_one_cycle_share_the_lower_pass_and_train_the_same(tiny_model_dir, monkeypatch):
    """A search trial fills the cache by example id; the next run (another subset, another
    order) reuses it without one lower pass it has states for, and trains exactly as a run
    with its own cache does."""
    examples = [{"id": f"ex-{i}", "input": x, "output": y} for i, (x, y) in enumerate(TEXTS)]
    shared = ActivationCache(2**24)
    _train(tiny_model_dir, examples[:4], shared)  # a trial on the fit split
    assert set(shared.entries) == {f"ex-{i}" for i in range(4)}

    lower_rows = count_lower_passes(monkeypatch)
    reordered = examples[::-1]
    weights, loss = _train(tiny_model_dir, reordered, shared)
    assert sum(lower_rows) == 2  # only ex-4 and ex-5 were new
    monkeypatch.undo()
    alone_weights, alone_loss = _train(tiny_model_dir, reordered)
    assert loss == pytest.approx(alone_loss, abs=1e-5)
    for mine, theirs in zip(weights, alone_weights, strict=True):
        assert torch.allclose(mine, theirs, atol=1e-5)


def test_a_shared_cache_is_emptied_when_what_made_the_states_changes():
    cache = ActivationCache(2**20)
    cache.bind((6, ("base", 128)))
    assert cache.put("ex-1", torch.zeros(4, 8))
    cache.bind((6, ("base", 128)))
    assert "ex-1" in cache.entries
    cache.bind((6, ("base", 256)))  # another sequence length cuts inputs differently
    assert not cache.entries and cache.bytes == 0


def test_a_trials_development_loss_is_the_plain_loss_and_reuses_the_cycles_lower_pass(
    tiny_model_dir, monkeypatch
):
    """The dev loss a search trial measures several times equals the mean reply-token loss of
    the plain forward pass (left-padded, as scoring computes it), and after its first
    measurement it runs no lower pass again."""
    examples = [{"id": f"dev-{i}", "input": x, "output": y} for i, (x, y) in enumerate(TEXTS)]
    shared = ActivationCache(2**24)
    recipe = LoRARecipe(
        tiny_recipe(top_layers=1, dropout=0.0), tiny_model_dir, torch.device("cpu"), shared
    )
    recipe.setup()
    lengths = recipe.settings.lengths
    pairs = [
        (
            prompt_ids(recipe.tokenizer, STYLE, e["input"], lengths.prompt_budget),
            target_ids(recipe.tokenizer, e["output"]),
        )
        for e in examples
    ]
    sums = reply_logprobs(recipe.model, pairs, recipe.tokenizer.pad_token_id)[0]
    plain = -sum(total for total, _ in sums) / sum(count for _, count in sums)

    # Under training's precision (bf16 autocast on CPUs that have it), so to bf16 rounding.
    assert recipe.reply_loss(examples, STYLE, batch_size=4) == pytest.approx(plain, rel=1e-3)
    assert set(shared.entries) == {e["id"] for e in examples}

    lower_rows = count_lower_passes(monkeypatch)
    assert recipe.reply_loss(examples, STYLE) == pytest.approx(plain, rel=1e-3)
    assert lower_rows == []


def test_a_trial_scores_its_development_split_as_scoring_does_without_the_frozen_layers(
    tiny_model_dir, monkeypatch
):
    """A trial's dev metric reads the labels' first tokens and the reference's likelihood
    through the split forward: the same numbers and the same predictions as the plain pass,
    and no lower pass for examples the cycle already ran through the frozen layers."""
    examples = [{"id": f"dev-{i}", "input": x, "output": y} for i, (x, y) in enumerate(TEXTS)]
    shared = ActivationCache(2**24)
    recipe = LoRARecipe(
        tiny_recipe(top_layers=1, dropout=0.0), tiny_model_dir, torch.device("cpu"), shared
    )
    recipe.setup()
    lengths = recipe.settings.lengths
    tokenizer = recipe.tokenizer
    pairs = [
        (
            prompt_ids(tokenizer, STYLE, e["input"], lengths.prompt_budget),
            target_ids(tokenizer, e["output"]),
        )
        for e in examples
    ]
    firsts = [target_ids(tokenizer, label)[0] for label in STYLE.labels]
    plain_sums, plain_firsts = reply_logprobs(
        recipe.model, pairs, tokenizer.pad_token_id, first_token_ids=firsts
    )
    recipe.reply_loss(examples, STYLE)  # the trial's dev-loss pass fills the cache

    lower_rows = count_lower_passes(monkeypatch)
    sums, split_firsts = recipe.reply_logprobs(examples, pairs, firsts)
    assert lower_rows == []
    for (total, count), (plain_total, plain_count) in zip(sums, plain_sums, strict=True):
        assert count == plain_count and total == pytest.approx(plain_total, rel=1e-3)
    for mine, theirs in zip(split_firsts, plain_firsts, strict=True):
        assert mine == pytest.approx(theirs, rel=1e-3, abs=1e-3)

    plain_rows = score(recipe.model, tokenizer, STYLE, examples, lengths=lengths)
    split_rows = score(
        recipe.model, tokenizer, STYLE, examples, lengths=lengths, logprobs=recipe.reply_logprobs
    )
    assert [r["prediction"] for r in split_rows] == [r["prediction"] for r in plain_rows]
    assert [r["nll"] for r in split_rows] == pytest.approx([r["nll"] for r in plain_rows], rel=1e-3)
