"""The hand-made baseline on the tiny random Llama: the prompt is Flywheel's, nothing is cut,
the loss is on the answer only, and a run reports a held-out metric and its cost."""

from __future__ import annotations

import math

import pytest

from benchmarks.zoo import ZooTask
from benchmarks.zoo.baseline import BaselineSettings, features, pad_batch, run_baseline
from training.chat_format import IGNORE_INDEX, PromptStyle, end_of_turn, prompt_ids
from training.checkpoints import load_tokenizer

STYLE = PromptStyle("Is this message about money?", "label", ("yes", "no"))


def money_task(kind: str = "label") -> ZooTask:
    def example(i: int) -> dict[str, str]:
        money = i % 3 == 0
        answer = ("yes" if money else "no") if kind == "label" else f"topic {i % 3}"
        return {"input": f"message {i}: " + ("send cash" if money else "lunch?"), "output": answer}

    return ZooTask(
        name="money",
        kind=kind,
        labels=("yes", "no") if kind == "label" else None,
        instruction=STYLE.instruction,
        train=[example(i) for i in range(24)],
        more=[],
        held_out=[example(i) for i in range(100, 110)],
        source="made up",
    )


def test_the_prompt_is_flywheels_and_the_loss_is_on_the_answer_only(tiny_model_dir):
    tokenizer = load_tokenizer(tiny_model_dir)
    row = features(tokenizer, STYLE, {"input": "send cash now", "output": "yes"})
    prompt = prompt_ids(tokenizer, STYLE, "send cash now", 96)
    assert row["input_ids"][: len(prompt)] == prompt
    assert row["labels"][: len(prompt)] == [IGNORE_INDEX] * len(prompt)
    answer = [t for t in row["labels"] if t != IGNORE_INDEX]
    assert answer == row["input_ids"][len(prompt) :]
    assert tokenizer.decode(answer) == "yes" + end_of_turn(tokenizer)


def test_a_long_input_is_kept_whole(tiny_model_dir):
    tokenizer = load_tokenizer(tiny_model_dir)
    long_input = " ".join(f"word{i}" for i in range(300)) + " LASTWORD"
    row = features(tokenizer, STYLE, {"input": long_input, "output": "no"})
    assert len(row["input_ids"]) > 600  # Flywheel's default 96 tokens would cut it
    assert "LASTWORD" in tokenizer.decode(row["input_ids"])


def test_padding_is_masked_from_attention_and_loss(tiny_model_dir):
    tokenizer = load_tokenizer(tiny_model_dir)
    short = features(tokenizer, STYLE, {"input": "hi", "output": "no"})
    long = features(tokenizer, STYLE, {"input": "hello " * 20, "output": "yes"})
    batch = pad_batch([short, long], tokenizer.pad_token_id)
    n = len(short["input_ids"])
    assert batch["input_ids"].shape == (2, len(long["input_ids"]))
    assert batch["attention_mask"][0].tolist() == [1] * n + [0] * (batch["input_ids"].shape[1] - n)
    assert set(batch["labels"][0, n:].tolist()) == {IGNORE_INDEX}
    assert batch["labels"][0, :n].tolist() == short["labels"]


def test_a_label_task_run_trains_and_reports_the_held_out_exact_match(tiny_model_dir):
    settings = BaselineSettings(epochs=2, batch_size=4, micro_batch_size=2)
    result = run_baseline(money_task(), tiny_model_dir, max_train=16, settings=settings)
    assert (result.task, result.metric, result.n_train, result.n_held_out) == (
        "money",
        "exact_match",
        16,
        10,
    )
    assert result.steps == 8  # 16 examples / 4 per step x 2 epochs (2 per pass, accumulated)
    assert math.isfinite(result.final_loss) and result.final_loss > 0
    share = result.value * 10  # of the 10 held-out answers, a whole number were right
    assert math.isclose(share, round(share)) and 0 <= share <= 10
    assert result.wall_s > 0 and result.train_s <= result.wall_s and result.peak_rss_mb > 100


def test_a_text_task_run_reports_the_default_text_metric_token_f1(tiny_model_dir):
    settings = BaselineSettings(epochs=1, batch_size=8)
    result = run_baseline(money_task("text"), tiny_model_dir, settings=settings)
    assert (result.metric, result.n_train, result.steps) == ("token_f1", 24, 3)
    assert 0.0 <= result.value <= 1.0 and result.eval_s > 0


def test_a_micro_batch_that_does_not_divide_the_batch_is_refused():
    with pytest.raises(ValueError, match="not a multiple of micro_batch_size 3"):
        BaselineSettings(batch_size=8, micro_batch_size=3)


def test_the_micro_batch_fits_the_longest_example_and_never_changes_the_updates():
    from benchmarks.zoo.baseline import MICRO_BATCH_TOKENS, micro_batch

    auto = BaselineSettings()
    assert micro_batch(auto, 40) == 8  # one-line inputs: the whole batch in one pass
    assert micro_batch(auto, MICRO_BATCH_TOKENS // 2) == 2
    assert micro_batch(auto, 3 * MICRO_BATCH_TOKENS) == 1  # a huge email: one at a time
    assert auto.batch_size % micro_batch(auto, 700) == 0  # accumulation reaches the batch
    assert micro_batch(BaselineSettings(micro_batch_size=2), 40) == 2  # given: kept
