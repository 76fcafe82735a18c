"""The request Flywheel sends a vLLM replica for one answer, and what it reads back.

The prompt is built here, as token ids, exactly as training and the gate built it (the
base model's chat template, the task's instruction, the input cut to the adapter's
recipe), and sent to vLLM's ``/v1/completions``: vLLM's own chat template handling would
ask the model something slightly different from what it was trained and scored on.

Label tasks are constrained to their labels with vLLM's structured output (``choice``) and
decoded greedily, so the answer is always a valid label. Confidence is the mean of vLLM's
token log-probabilities (raw model log-probabilities, before the constraint), as the
built-in server reports it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from training.chat_format import PromptStyle, SequenceLengths, end_of_turn, target_ids


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    mean_logprob: float
    output_tokens: int
    prompt_tokens: int


def answer_tokens(tokenizer: Any, style: PromptStyle, lengths: SequenceLengths, limit: int) -> int:
    """How many tokens an answer may take: the longest label and its end-of-turn for a label
    task; the recipe's answer length, or the caller's lower limit, for a text task."""
    if style.kind == "label":
        return max(len(target_ids(tokenizer, label)) for label in style.labels)
    return min(lengths.max_answer_tokens, limit)


def completion_body(
    *,
    model: str,
    prompt: list[int],
    style: PromptStyle,
    max_tokens: int,
    stop_token_id: int,
    stream: bool = False,
) -> dict[str, Any]:
    """The ``/v1/completions`` request: greedy, with each chosen token's log-probability."""
    body: dict[str, Any] = {
        "model": model,
        "prompt": prompt,
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "logprobs": 0,  # the chosen token's log-probability, no alternatives
        "stop_token_ids": [stop_token_id],
        "skip_special_tokens": True,
        "stream": stream,
    }
    if style.kind == "label":
        body["structured_outputs"] = {"choice": list(style.labels)}
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


def stop_token(tokenizer: Any) -> int:
    """The id of the token that closes the assistant's turn."""
    return int(tokenizer.convert_tokens_to_ids(end_of_turn(tokenizer)))


def read_completion(body: dict[str, Any]) -> Completion:
    """The answer in a ``/v1/completions`` response; ValueError when it holds none."""
    try:
        choice = body["choices"][0]
        logprobs = (choice.get("logprobs") or {}).get("token_logprobs") or []
        usage = body.get("usage") or {}
        return Completion(
            text=str(choice["text"]).strip(),
            mean_logprob=mean_logprob(logprobs),
            output_tokens=int(usage.get("completion_tokens", len(logprobs))),
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
        )
    except (KeyError, IndexError, TypeError) as error:
        raise ValueError(f"the vLLM replica's answer holds no completion: {error!r}") from error


def mean_logprob(values: list[float | None]) -> float:
    """The mean of the known token log-probabilities; 0.0 for an empty answer."""
    known = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    return sum(known) / len(known) if known else 0.0
