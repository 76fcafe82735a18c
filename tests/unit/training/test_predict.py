"""Serving answers exactly what the gate measured: predict() agrees with score()."""

from __future__ import annotations

import pytest
import torch

from training.chat_format import PromptStyle
from training.checkpoints import load_model, load_tokenizer
from training.predict import predict
from training.scoring import score

INPUTS = [f"message {i}: " + ("send cash now " * (i % 5) if i % 2 else "lunch?") for i in range(12)]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_model(tiny_model_dir, torch.device("cpu")), load_tokenizer(tiny_model_dir)


def test_label_answers_and_confidence_match_the_scorer(tiny):
    model, tokenizer = tiny
    style = PromptStyle("Is this about money?", "label", ("yes", "no"))
    rows = [{"id": str(i), "input": text, "output": "yes"} for i, text in enumerate(INPUTS)]
    scored = score(model, tokenizer, style, rows)
    batched = predict(model, tokenizer, style, INPUTS)  # left-padded batch of uneven prompts
    one_by_one = [predict(model, tokenizer, style, [text])[0] for text in INPUTS]
    assert [p.output for p in batched] == [s["prediction"] for s in scored]
    assert [p.output for p in one_by_one] == [s["prediction"] for s in scored]
    for p, s in zip(batched, scored, strict=True):
        assert p.mean_logprob == pytest.approx(s["mean_logprob"], abs=1e-4)
        assert p.mean_logprob < 0


def test_text_answers_carry_their_mean_token_logprob(tiny):
    model, tokenizer = tiny
    style = PromptStyle("Answer the question.", "text")
    answers = predict(model, tokenizer, style, INPUTS[:3], max_new_tokens=6)
    assert len(answers) == 3
    for answer in answers:
        assert isinstance(answer.output, str) and 1 <= answer.output_tokens <= 6
        assert answer.mean_logprob < 0
