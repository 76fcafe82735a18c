"""How an example is laid out for the model: the base model's chat template, with the task's
instruction as the system turn, the input as the user turn and the output as the reply.
Loss is taken on the reply only; inputs, never outputs, are truncated to fit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from schemas.tasks import TaskDefinition

IGNORE_INDEX = -100


@dataclass(frozen=True, slots=True)
class PromptStyle:
    """What the trainer and the scorer need to know about a task."""

    instruction: str
    kind: str  # "label" | "text"
    labels: tuple[str, ...] = ()

    @property
    def system(self) -> str:
        if self.kind == "label":
            return f"{self.instruction}\nAnswer with exactly one of: {', '.join(self.labels)}."
        return self.instruction


def style_of(task: TaskDefinition) -> PromptStyle:
    return PromptStyle(task.instruction, task.kind, tuple(task.labels or ()))


def end_of_turn(tokenizer: Any) -> str:
    """The token that closes the assistant's turn in this tokenizer's template. (Asked of the
    token itself: ``get_vocab()`` builds a 49k-entry dict, 30 ms a call.)"""
    token_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    known = token_id is not None and token_id != tokenizer.unk_token_id
    return "<|im_end|>" if known else tokenizer.eos_token


@dataclass(frozen=True, slots=True)
class SequenceLengths:
    """How long an example may be: the same for training, scoring and serving, so the model
    is asked exactly what it was trained on."""

    max_seq_len: int
    """Tokens of prompt + answer."""
    max_answer_tokens: int
    """Tokens reserved for the answer; also the generation limit."""
    truncation: str = "middle"
    """How an input that does not fit is cut: 'middle' or 'left'."""

    @property
    def prompt_budget(self) -> int:
        """Tokens of the whole prompt (template, instruction and input)."""
        return self.max_seq_len - self.max_answer_tokens


def prompt_overhead(tokenizer: Any, style: PromptStyle) -> int:
    """Tokens of the prompt around the input: the chat template and the system turn."""
    return len(_render(tokenizer, style, ""))


def prompt_ids(
    tokenizer: Any, style: PromptStyle, input_text: str, max_tokens: int, truncation: str = "middle"
) -> list[int]:
    """Chat-template prompt ending with the assistant header, at most ``max_tokens`` long (or
    the template alone, when even that is longer); a long input is cut from the middle (its
    beginning and end kept) or from the left (its end kept)."""
    budget = max(8, max_tokens - prompt_overhead(tokenizer, style))
    input_ids = tokenizer(input_text, add_special_tokens=False)["input_ids"]
    rendered = _render(tokenizer, style, input_text)
    # Decoded and re-encoded, a cut input can come back a token or two longer: cut again.
    for _ in range(4):
        if len(rendered) <= max_tokens or len(input_ids) <= budget or budget <= 0:
            break
        kept = _cut(input_ids, budget, truncation)
        rendered = _render(tokenizer, style, tokenizer.decode(kept))
        budget -= max(1, len(rendered) - max_tokens)
    return rendered


def _cut(ids: list[int], budget: int, truncation: str) -> list[int]:
    if truncation == "left":
        return ids[len(ids) - budget :]
    head = (budget + 1) // 2
    return ids[:head] + ids[len(ids) - (budget - head) :]


def target_ids(tokenizer: Any, output_text: str) -> list[int]:
    return tokenizer(output_text + end_of_turn(tokenizer), add_special_tokens=False)["input_ids"]


def training_example(
    tokenizer: Any, style: PromptStyle, input_text: str, output_text: str, lengths: SequenceLengths
) -> tuple[list[int], list[int]]:
    """(input_ids, labels) with labels masked to IGNORE_INDEX outside the reply. The prompt is
    cut exactly as scoring and serving cut it; the reply only beyond max_answer_tokens."""
    target = target_ids(tokenizer, output_text)[: lengths.max_answer_tokens]
    prompt = prompt_ids(tokenizer, style, input_text, lengths.prompt_budget, lengths.truncation)
    return prompt + target, [IGNORE_INDEX] * len(prompt) + target


def _render(tokenizer: Any, style: PromptStyle, input_text: str) -> list[int]:
    messages = [
        {"role": "system", "content": style.system},
        {"role": "user", "content": input_text},
    ]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    if isinstance(ids, dict) or hasattr(ids, "keys"):
        ids = ids["input_ids"]
    return list(ids)
