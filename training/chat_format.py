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


def prompt_ids(tokenizer: Any, style: PromptStyle, input_text: str, max_tokens: int) -> list[int]:
    """Chat-template prompt ending with the assistant header; the input is cut to fit."""
    overhead = len(_render(tokenizer, style, ""))
    budget = max(8, max_tokens - overhead)
    input_ids = tokenizer(input_text, add_special_tokens=False)["input_ids"]
    if len(input_ids) > budget:
        input_text = tokenizer.decode(input_ids[:budget])
    return _render(tokenizer, style, input_text)


def target_ids(tokenizer: Any, output_text: str) -> list[int]:
    return tokenizer(output_text + end_of_turn(tokenizer), add_special_tokens=False)["input_ids"]


def training_example(
    tokenizer: Any, style: PromptStyle, input_text: str, output_text: str, max_seq_len: int
) -> tuple[list[int], list[int]]:
    """(input_ids, labels) with labels masked to IGNORE_INDEX outside the reply."""
    target = target_ids(tokenizer, output_text)[: max_seq_len // 2]
    prompt = prompt_ids(tokenizer, style, input_text, max_seq_len - len(target))
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
