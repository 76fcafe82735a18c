"""Serving answers exactly what the gate measured: predict() agrees with score()."""

from __future__ import annotations

import pytest
import torch

from training.chat_format import PromptStyle, SequenceLengths
from training.checkpoints import load_model, load_tokenizer
from training.predict import predict, reply_logprobs
from training.scoring import score

LENGTHS = SequenceLengths(max_seq_len=96, max_answer_tokens=8)
INPUTS = [f"message {i}: " + ("send cash now " * (i % 5) if i % 2 else "lunch?") for i in range(12)]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_model(tiny_model_dir, torch.device("cpu")), load_tokenizer(tiny_model_dir)


def test_label_answers_and_confidence_match_the_scorer(tiny):
    model, tokenizer = tiny
    style = PromptStyle("Is this about money?", "label", ("yes", "no"))
    rows = [{"id": str(i), "input": text, "output": "yes"} for i, text in enumerate(INPUTS)]
    scored = score(model, tokenizer, style, rows, lengths=LENGTHS)
    batched = predict(
        model, tokenizer, style, INPUTS, lengths=LENGTHS
    )  # left-padded batch of uneven prompts
    one_by_one = [predict(model, tokenizer, style, [text], lengths=LENGTHS)[0] for text in INPUTS]
    assert [p.output for p in batched] == [s["prediction"] for s in scored]
    assert [p.output for p in one_by_one] == [s["prediction"] for s in scored]
    for p, s in zip(batched, scored, strict=True):
        assert p.mean_logprob == pytest.approx(s["mean_logprob"], abs=1e-4)
        assert p.mean_logprob < 0


def test_text_answers_carry_their_mean_token_logprob(tiny):
    model, tokenizer = tiny
    style = PromptStyle("Answer the question.", "text")
    answers = predict(model, tokenizer, style, INPUTS[:3], lengths=LENGTHS, max_new_tokens=6)
    assert len(answers) == 3
    for answer in answers:
        assert isinstance(answer.output, str) and 1 <= answer.output_tokens <= 6
        assert answer.mean_logprob < 0


def test_reply_logprobs_match_one_unpadded_sequence_at_a_time(tiny):
    model, tokenizer = tiny
    pairs = [
        (tokenizer(text, add_special_tokens=False)["input_ids"], reply)
        for text, reply in [
            ("send cash now", [11, 12, 13]),
            ("lunch at noon? " * 4, [7]),
            ("hi", [42, 43]),
        ]
    ]
    batched, firsts = reply_logprobs(model, pairs, tokenizer.pad_token_id, first_token_ids=[7, 11])
    for (prompt, reply), (total, count), first in zip(pairs, batched, firsts, strict=True):
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([prompt + reply])).logits[0].float()
        logprobs = torch.log_softmax(logits, dim=-1)
        expected = sum(float(logprobs[len(prompt) - 1 + i, t]) for i, t in enumerate(reply))
        assert count == len(reply)
        assert total == pytest.approx(expected, abs=1e-3)
        at_reply = logprobs[len(prompt) - 1]
        assert first == pytest.approx([float(at_reply[7]), float(at_reply[11])], abs=1e-3)
