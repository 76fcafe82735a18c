"""Answer live inputs the way the gate scored them, with the model's confidence.

Label tasks pick the label exactly as evaluation does (first reply token when the labels'
first tokens differ, else the whole label's log-likelihood), so what is served is what was
measured. Text tasks generate greedily. Confidence is the mean token log-probability of the
answer: the reviewer queue puts low-confidence answers first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from training.chat_format import PromptStyle, SequenceLengths, end_of_turn, prompt_ids, target_ids


@dataclass(frozen=True, slots=True)
class Prediction:
    output: str
    mean_logprob: float
    output_tokens: int
    prompt_tokens: int = 0


@torch.no_grad()
def reply_logprobs(
    model: Any,
    pairs: Sequence[tuple[list[int], list[int]]],
    pad_id: int,
    batch_size: int = 16,
    first_token_ids: Sequence[int] = (),
) -> tuple[list[tuple[float, int]], list[list[float]]]:
    """(sum of log-probabilities, token count) of each reply given its prompt, and, for each
    pair, the log-probability of each of ``first_token_ids`` as the reply's first token (read
    from the same forward pass; empty lists when none are asked for).

    Rows are left-padded, so every reply ends at the last position and the LM head and the
    softmax run only over the last (longest reply + 1) positions, not the whole prompt."""
    results: list[tuple[float, int]] = []
    firsts: list[list[float]] = []
    device = next(model.parameters()).device
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        keep = max(len(t) for _, t in chunk) + 1
        ids, mask, position_ids = left_padded([p + t for p, t in chunk], pad_id, device)
        logits = model(
            input_ids=ids, attention_mask=mask, position_ids=position_ids, logits_to_keep=keep
        ).logits
        logprobs = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # kept index k predicts k+1
        for row, (_, target) in enumerate(chunk):
            first = keep - 1 - len(target)  # the position that predicts the reply's first token
            predicting = torch.arange(first, keep - 1, device=device)
            values = logprobs[row, predicting, torch.tensor(target, device=device)]
            results.append((float(values.sum()), len(target)))
            firsts.append([float(logprobs[row, first, t]) for t in first_token_ids])
    return results, firsts


@torch.no_grad()
def predict(
    model: Any,
    tokenizer: Any,
    style: PromptStyle,
    inputs: Sequence[str],
    *,
    lengths: SequenceLengths,
    max_new_tokens: int | None = None,
) -> list[Prediction]:
    """Answers to ``inputs``, their prompts cut as the adapter's recipe cut them in training;
    text answers run to the recipe's answer length (or ``max_new_tokens``, if lower)."""
    model.eval()
    prompts = [
        prompt_ids(tokenizer, style, text, lengths.prompt_budget, lengths.truncation)
        for text in inputs
    ]
    if style.kind == "label":
        answers = _labels(model, tokenizer, style, prompts)
    else:
        limit = min(lengths.max_answer_tokens, max_new_tokens or lengths.max_answer_tokens)
        answers = generate(model, tokenizer, prompts, limit)
    return [replace(a, prompt_tokens=len(p)) for a, p in zip(answers, prompts, strict=True)]


def _labels(
    model: Any, tokenizer: Any, style: PromptStyle, prompts: list[list[int]]
) -> list[Prediction]:
    label_ids = [target_ids(tokenizer, label) for label in style.labels]
    firsts = [ids[0] for ids in label_ids]
    pad = tokenizer.pad_token_id
    if len(set(firsts)) == len(firsts):
        # One pass over the prompt; only the last position's logits are computed.
        logprobs = _next_token_logprobs(model, prompts, pad)[:, firsts]
        out = []
        for values in logprobs.tolist():
            best = max(range(len(values)), key=values.__getitem__)
            out.append(Prediction(style.labels[best], values[best], 1))
        return out
    pairs = [(prompt, ids) for prompt in prompts for ids in label_ids]
    scores, _ = reply_logprobs(model, pairs, pad, len(pairs))
    k = len(label_ids)
    out = []
    for row in range(len(prompts)):
        totals = scores[row * k : (row + 1) * k]
        best = max(range(k), key=lambda j: totals[j][0])  # as scoring ranks them
        total, count = totals[best]
        out.append(Prediction(style.labels[best], total / count, count))
    return out


def _next_token_logprobs(model: Any, prompts: list[list[int]], pad: int) -> torch.Tensor:
    """Log-probabilities of the token after each prompt (left-padded batch, true positions)."""
    device = next(model.parameters()).device
    ids, mask, position_ids = left_padded(prompts, pad, device)
    logits = model(
        input_ids=ids, attention_mask=mask, position_ids=position_ids, logits_to_keep=1
    ).logits
    return torch.log_softmax(logits[:, -1].float(), dim=-1)


def left_padded(
    sequences: Sequence[list[int]], pad: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask, position_ids) of a left-padded batch: every sequence ends
    at the last position, and positions count from each sequence's first real token."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        ids[row, width - len(sequence) :] = torch.tensor(sequence)
        mask[row, width - len(sequence) :] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids.to(device), mask.to(device), positions.to(device)


@torch.no_grad()
def generate(
    model: Any, tokenizer: Any, prompts: list[list[int]], max_new: int
) -> list[Prediction]:
    """Greedy replies to chat-template prompts, each with its mean token log-probability."""
    pad = tokenizer.pad_token_id
    # Left padding: every reply starts at `width`.
    ids, mask, _ = left_padded(prompts, pad, next(model.parameters()).device)
    width = ids.shape[1]
    stop = tokenizer.convert_tokens_to_ids(end_of_turn(tokenizer))
    out = model.generate(
        input_ids=ids,
        attention_mask=mask,
        max_new_tokens=max_new,
        do_sample=False,
        eos_token_id=stop,
        pad_token_id=pad,
        output_scores=True,
        return_dict_in_generate=True,
    )
    steps = torch.stack([s.float().log_softmax(-1) for s in out.scores], dim=1)
    new_tokens = out.sequences[:, width:]
    chosen = steps.gather(-1, new_tokens.unsqueeze(-1)).squeeze(-1)
    predictions = []
    for row in range(len(prompts)):
        tokens = new_tokens[row].tolist()
        length = tokens.index(stop) + 1 if stop in tokens else len(tokens)
        mean = float(chosen[row, :length].mean()) if length else 0.0
        text = tokenizer.decode(tokens[:length], skip_special_tokens=True).strip()
        predictions.append(Prediction(text, mean, length))
    return predictions
