"""The request Flywheel sends a vLLM replica for one answer, and what it reads back.

The prompt is built here, as token ids, exactly as training and the gate built it (the
base model's chat template, the task's instruction, the input cut to the adapter's
recipe), and sent to vLLM's ``/v1/completions``: vLLM's own chat template handling would
ask the model something slightly different from what it was trained and scored on.

Label tasks answer only with a label, chosen by the gate's own rule (``training.predict``):
where the labels' first tokens differ, vLLM may produce only those tokens
(``allowed_token_ids``, one greedy token), which is exactly the gate's choice, and the token
is mapped back to its label. Where two labels share a first token, vLLM's structured output
(``choice`` among the labels) constrains the answer. Measured on 100 real emails, the
structured-output choice alone agreed with the gate on 97: greedy decoding under a string
constraint may pick another tokenization of a label ("s" + "pam" rather than "sp" + "am"),
which the gate never scores. Confidence is the mean of vLLM's raw token log-probabilities
(before any constraint), as the built-in server reports it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from training.chat_format import PromptStyle, SequenceLengths, end_of_turn, target_ids


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    mean_logprob: float
    output_tokens: int
    prompt_tokens: int


def label_first_tokens(tokenizer: Any, style: PromptStyle) -> dict[int, str] | None:
    """Each label by the first token of its reply, when those differ (the gate then ranks
    labels by that token alone); None for a text task or labels sharing a first token."""
    if style.kind != "label":
        return None
    firsts = {target_ids(tokenizer, label)[0]: label for label in style.labels}
    return firsts if len(firsts) == len(style.labels) else None


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
    first_tokens: Mapping[int, str] | None = None,
    stream: bool = False,
) -> dict[str, Any]:
    """The ``/v1/completions`` request: greedy, with each chosen token's log-probability.
    ``first_tokens`` (``label_first_tokens``): one token, among those only."""
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
    if first_tokens:
        body.update(max_tokens=1, allowed_token_ids=list(first_tokens), return_token_ids=True)
    elif style.kind == "label":
        body["structured_outputs"] = {"choice": list(style.labels)}
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


def stop_token(tokenizer: Any) -> int:
    """The id of the token that closes the assistant's turn."""
    return int(tokenizer.convert_tokens_to_ids(end_of_turn(tokenizer)))


def read_completion(
    body: dict[str, Any], first_tokens: Mapping[int, str] | None = None
) -> Completion:
    """The answer in a ``/v1/completions`` response (its one token read as its label, with
    ``first_tokens``); ValueError when it holds none."""
    try:
        choice = body["choices"][0]
        logprobs = (choice.get("logprobs") or {}).get("token_logprobs") or []
        usage = body.get("usage") or {}
        text = str(choice["text"]).strip()
        if first_tokens:
            text = first_tokens[int(choice["token_ids"][0])]
        return Completion(
            text=text,
            mean_logprob=mean_logprob(logprobs),
            output_tokens=int(usage.get("completion_tokens", len(logprobs))),
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
        )
    except (KeyError, IndexError, TypeError, ValueError) as error:
        raise ValueError(f"the vLLM replica's answer holds no completion: {error!r}") from error


def mean_logprob(values: list[float | None]) -> float:
    """The mean of the known token log-probabilities; 0.0 for an empty answer."""
    known = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    return sum(known) / len(known) if known else 0.0
