"""Settings that come from the data: lengths, steps and class balance worked out from a
cycle's training examples, values a task sets kept, and old task definitions migrated."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from pydantic import ValidationError

from schemas.tasks import TaskDefinition, TrainingRecipe
from training.auto_recipe import (
    AUTO_LEARNING_RATE,
    MAX_AUTO_ANSWER_TOKENS,
    MAX_AUTO_SEQ_LEN,
    MAX_AUTO_STEPS,
    MIN_AUTO_STEPS,
    TRAIN_TOKEN_BUDGET,
    DataStats,
    measure,
    resolve,
)
from training.chat_format import (
    IGNORE_INDEX,
    PromptStyle,
    SequenceLengths,
    prompt_ids,
    training_example,
)
from training.checkpoints import load_tokenizer
from training.lora_recipe import epoch_order

AUTO = TrainingRecipe()


def stats(prompts: list[int], answers: list[int] | None = None, **more) -> DataStats:
    answers = answers or [3] * len(prompts)
    return DataStats(len(prompts), tuple(prompts), tuple(answers), **more)


def test_sequence_length_covers_95_percent_of_prompts_and_reports_the_rest_cut():
    prompts = [60 + i % 10 for i in range(95)] + [900] * 5  # 5% long outliers
    resolution = resolve(AUTO, stats(prompts, label_answer_tokens=4), kind="label")
    recipe = resolution.recipe
    assert recipe.max_answer_tokens == 4  # the longest label, end of turn included
    assert recipe.max_seq_len % 32 == 0
    assert recipe.lengths.prompt_budget >= 69  # every ordinary prompt fits whole
    assert recipe.max_seq_len < 69 + 4 + 32  # and no more than padding beyond it
    assert resolution.inputs_cut == 5 and resolution.measured == 100


def test_sequence_length_is_capped_and_long_inputs_are_counted_as_cut():
    resolution = resolve(AUTO, stats([2000] * 40, label_answer_tokens=3), kind="label")
    assert resolution.recipe.max_seq_len == MAX_AUTO_SEQ_LEN
    assert resolution.inputs_cut == 40


def test_answer_length_is_the_longest_reference_and_never_squeezed_by_the_input():
    answers = [10, 120, 35]
    resolution = resolve(AUTO, stats([500, 500, 500], answers), kind="text")
    recipe = resolution.recipe
    assert recipe.max_answer_tokens == 120 and resolution.answers_cut == 0
    assert recipe.lengths.prompt_budget == recipe.max_seq_len - 120 > 0
    huge = resolve(AUTO, stats([40], [MAX_AUTO_ANSWER_TOKENS + 50]), kind="text")
    assert huge.recipe.max_answer_tokens == MAX_AUTO_ANSWER_TOKENS and huge.answers_cut == 1


@pytest.mark.parametrize(
    ("examples", "steps"),
    [(400, MAX_AUTO_STEPS), (200, 75), (40, MIN_AUTO_STEPS), (100_000, MAX_AUTO_STEPS)],
)
def test_steps_come_from_the_number_of_examples(examples, steps):
    resolved = resolve(AUTO, DataStats(examples, (50,), (3,)), kind="label").recipe
    assert resolved.steps == steps
    assert resolved.epochs == pytest.approx(steps * 8 / examples, rel=1e-2)


@pytest.mark.parametrize(("prompt_tokens", "steps"), [(50, 150), (250, 75), (2000, 50)])
def test_long_inputs_take_fewer_steps_within_the_token_budget(prompt_tokens, steps):
    resolved = resolve(AUTO, stats([prompt_tokens] * 400), kind="label").recipe
    assert resolved.steps == steps
    assert resolved.steps * resolved.batch_size * resolved.max_seq_len <= TRAIN_TOKEN_BUDGET
    # steps or epochs a task gives are its own, budget or not
    given = TrainingRecipe(max_steps=120)
    assert resolve(given, stats([2000] * 400), kind="label").recipe.steps == 120


def test_values_a_task_sets_are_kept_and_the_rest_is_automatic():
    given = TrainingRecipe(learning_rate=5e-4, epochs=1.0, max_seq_len=256, rank=16)
    resolution = resolve(given, stats([50] * 200, [5] * 200), kind="text")
    recipe = resolution.recipe
    assert (recipe.learning_rate, recipe.max_seq_len, recipe.rank) == (5e-4, 256, 16)
    assert recipe.steps == 25  # one epoch of 200 examples at batch 8
    assert "learning_rate" not in resolution.automatic
    assert {"max_answer_tokens", "max_steps"} <= set(resolution.automatic)
    assert resolve(AUTO, stats([50]), kind="text").recipe.learning_rate == AUTO_LEARNING_RATE
    assert resolve(TrainingRecipe(max_steps=7), stats([50] * 400), kind="label").recipe.steps == 7


def test_label_tasks_sample_every_label_equally_often():
    examples = [{"output": "A"}] * 200 + [{"output": "B"}] * 100  # 2:1, as users bring them
    recipe = resolve(AUTO, stats([50] * 300), kind="label").recipe
    assert recipe.class_balance == "balanced"
    assert resolve(AUTO, stats([50] * 300), kind="text").recipe.class_balance == "none"
    rng = random.Random(0)
    drawn = Counter(
        examples[i]["output"] for _ in range(10) for i in epoch_order(examples, balanced=True)(rng)
    )
    assert abs(drawn["A"] / drawn["B"] - 1.0) < 0.1
    plain = Counter(examples[i]["output"] for i in epoch_order(examples, balanced=False)(rng))
    assert plain == {"A": 200, "B": 100}  # unbalanced: each example once an epoch


def test_a_task_stored_with_the_old_training_plan_gets_the_automatic_settings():
    old = {
        "replay_budget": 200,
        "epochs": 2.0,
        "max_steps": 200,
        "learning_rate": 2e-4,
        "eval_fraction": 0.3,
    }
    task = TaskDefinition.model_validate(
        {"name": "t", "kind": "text", "instruction": "Say it.", "training": old}
    )
    assert task.training.learning_rate == "auto" and task.training.max_steps == "auto"
    assert task.training.eval_fraction == 0.3  # what the operator changed stays
    changed = TrainingRecipe.model_validate({**old, "learning_rate": 1e-3})
    assert changed.learning_rate == 1e-3 and changed.epochs == "auto"


def test_impossible_recipes_are_refused_with_the_fix():
    with pytest.raises(ValidationError, match="raise max_seq_len or lower max_answer_tokens"):
        TrainingRecipe(max_seq_len=64, max_answer_tokens=60)
    with pytest.raises(ValidationError, match="class_balance balanced needs labels"):
        TaskDefinition(
            name="t",
            kind="text",
            instruction="x",
            training=TrainingRecipe(class_balance="balanced"),
        )


STYLE = PromptStyle("Is this about money?", "label", ("yes", "no"))
LONG = "BEGINNING " + "filler words here " * 200 + " THE END"


def test_long_inputs_are_cut_from_the_middle_or_the_left_and_answers_never(tiny_model_dir):
    tokenizer = load_tokenizer(tiny_model_dir)
    middle = tokenizer.decode(prompt_ids(tokenizer, STYLE, LONG, 80))
    assert "BEGINNING" in middle and "THE END" in middle
    left = tokenizer.decode(prompt_ids(tokenizer, STYLE, LONG, 80, "left"))
    assert "BEGINNING" not in left and "THE END" in left
    assert len(prompt_ids(tokenizer, STYLE, LONG, 80)) <= 80
    ids, labels = training_example(tokenizer, STYLE, LONG, "yes", SequenceLengths(96, 6))
    assert len(ids) <= 96
    assert tokenizer.decode([t for t in labels if t != IGNORE_INDEX]).startswith("yes")


def test_measured_lengths_are_what_the_prompt_and_answer_take(tiny_model_dir):
    tokenizer = load_tokenizer(tiny_model_dir)
    examples = [
        {"input": "hello there " * k, "output": "yes" if k % 2 else "no"} for k in (1, 9, 30)
    ]
    measured = measure(tokenizer, STYLE, examples)
    whole = [len(prompt_ids(tokenizer, STYLE, e["input"], 10_000)) for e in examples]
    assert [abs(a - b) <= 1 for a, b in zip(measured.prompt_tokens, whole, strict=True)] == [
        True
    ] * 3
    assert measured.label_counts == (("yes", 2), ("no", 1))
    assert measured.label_answer_tokens >= 2  # a label and the end of the turn
