"""The request sent to vLLM and the answer read back."""

from __future__ import annotations

import pytest

from services.vllm_serving.completion import (
    completion_body,
    label_first_tokens,
    mean_logprob,
    read_completion,
)
from training.chat_format import PromptStyle
from training.checkpoints import load_tokenizer

LABELS = PromptStyle("Is this spam?", "label", ("spam", "ham"))
TEXT = PromptStyle("Answer the question.", "text")


def test_labels_with_distinct_first_tokens_answer_with_one_of_those_tokens(tiny_model_dir):
    tokenizer = load_tokenizer(tiny_model_dir)
    first = label_first_tokens(tokenizer, LABELS)
    assert first is not None and sorted(first.values()) == ["ham", "spam"]
    body = completion_body(
        model="spam@a1", prompt=[1], style=LABELS, max_tokens=3, stop_token_id=2, first_tokens=first
    )
    assert body["allowed_token_ids"] == list(first) and body["max_tokens"] == 1
    assert "structured_outputs" not in body
    spam_token = next(t for t, label in first.items() if label == "spam")
    answer = {"choices": [{"text": "sp", "token_ids": [spam_token], "logprobs": {}}]}
    assert read_completion(answer, first).text == "spam"
    shared = PromptStyle("Which?", "label", ("spam", "spamalot"))
    assert label_first_tokens(tokenizer, shared) is None  # these go to structured output
    assert label_first_tokens(tokenizer, TEXT) is None


def test_labels_sharing_a_first_token_are_constrained_by_structured_output():
    body = completion_body(
        model="spam@a1", prompt=[1, 2, 3], style=LABELS, max_tokens=3, stop_token_id=2
    )
    assert body["structured_outputs"] == {"choice": ["spam", "ham"]}
    assert body["temperature"] == 0.0 and body["prompt"] == [1, 2, 3]
    assert body["model"] == "spam@a1" and body["logprobs"] == 0


def test_a_text_task_is_free_and_a_stream_reports_its_usage():
    body = completion_body(
        model="base", prompt=[1], style=TEXT, max_tokens=64, stop_token_id=2, stream=True
    )
    assert "structured_outputs" not in body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_the_answer_carries_its_text_mean_logprob_and_token_counts():
    completion = read_completion(
        {
            "choices": [{"text": " spam", "logprobs": {"token_logprobs": [-0.5, -0.1, -0.0]}}],
            "usage": {"prompt_tokens": 40, "completion_tokens": 3},
        }
    )
    assert completion.text == "spam"
    assert completion.mean_logprob == pytest.approx(-0.2)
    assert (completion.prompt_tokens, completion.output_tokens) == (40, 3)


def test_an_answer_without_a_choice_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="no completion"):
        read_completion({"choices": []})


def test_unknown_logprobs_are_left_out_of_the_mean():
    assert mean_logprob([None, -1.0, float("nan"), -3.0]) == -2.0
    assert mean_logprob([]) == 0.0
