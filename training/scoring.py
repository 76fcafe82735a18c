"""Score a model (base, or base + adapter) on examples: predictions and per-example metrics.

Label tasks are scored by ranking the labels by the model's log-likelihood of each as the
reply: the model always answers with a valid label, and a tiny model that has not learned the
output format is still judged on what it knows. Text tasks are scored on greedy generations.
Both also report the reference's mean token negative log-likelihood (nll).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from training.chat_format import PromptStyle, SequenceLengths, prompt_ids, target_ids
from training.metrics import chrf, exact_match, token_f1
from training.predict import generate, reply_logprobs

Progress = Callable[[dict[str, Any]], None]
ReplyLogprobs = Callable[
    [Sequence[dict], Sequence[tuple[list[int], list[int]]], Sequence[int]],
    tuple[list[tuple[float, int]], list[list[float]]],
]
"""(examples, their (prompt, reference) token pairs, first-token ids to read) -> what
``predict.reply_logprobs`` returns for those pairs, computed another way (a search trial's
split forward over the cycle's cached frozen layers)."""
INPUT_SHOWN = 300  # characters of each input kept with its scores, for side-by-side evidence


def score(
    model: Any,
    tokenizer: Any,
    style: PromptStyle,
    examples: Sequence[dict],
    *,
    lengths: SequenceLengths,
    batch_size: int = 16,
    progress: Progress | None = None,
    logprobs: ReplyLogprobs | None = None,
) -> list[dict[str, Any]]:
    """One dict per example: id, prediction, the metrics of the task's kind, nll. Prompts are
    cut as training cut them; text answers are generated up to the answer length.
    ``logprobs`` replaces ``predict.reply_logprobs`` for the reference's likelihood (and the
    labels' first tokens)."""
    model.eval()
    pad = tokenizer.pad_token_id
    prompts = [
        prompt_ids(tokenizer, style, e["input"], lengths.prompt_budget, lengths.truncation)
        for e in examples
    ]
    references = [target_ids(tokenizer, e["output"]) for e in examples]
    scored: list[dict[str, Any]] = []
    label_ids = [target_ids(tokenizer, label) for label in style.labels]
    first_tokens = [ids[0] for ids in label_ids]
    # Labels that differ in their first token are ranked from the same forward pass that
    # scores the reference (one pass per example instead of one per label).
    by_first_token = style.kind == "label" and len(set(first_tokens)) == len(first_tokens)
    for start in range(0, len(examples), batch_size):
        stop = min(len(examples), start + batch_size)
        batch = range(start, stop)
        pairs = [(prompts[i], references[i]) for i in batch]
        firsts_asked = first_tokens if by_first_token else ()
        if logprobs is None:
            nll, firsts = reply_logprobs(model, pairs, pad, batch_size, firsts_asked)
        else:
            nll, firsts = logprobs([examples[i] for i in batch], pairs, firsts_asked)
        if by_first_token:
            predictions = [style.labels[max(range(len(f)), key=f.__getitem__)] for f in firsts]
            confidences = [max(f) for f in firsts]
        if style.kind == "label" and not by_first_token:
            predictions = _rank_labels(
                model, tokenizer, style, [prompts[i] for i in batch], batch_size
            )
        elif style.kind == "text":
            predictions = [
                p.output
                for p in generate(
                    model, tokenizer, [prompts[i] for i in batch], lengths.max_answer_tokens
                )
            ]
        for offset, i in enumerate(batch):
            reference = examples[i]["output"]
            prediction = predictions[offset]
            total, count = nll[offset]
            row: dict[str, Any] = {
                "id": examples[i].get("id", str(i)),
                "prediction": prediction,
                "input": examples[i]["input"][:INPUT_SHOWN],
                "reference": reference,
                "nll": -total / max(1, count),
            }
            if by_first_token:  # log-probability of the chosen label: the model's confidence
                row["mean_logprob"] = confidences[offset]
            if style.kind == "label":
                row["exact_match"] = exact_match(prediction, reference)
            else:
                row["token_f1"] = token_f1(prediction, reference)
                row["chrf"] = chrf(prediction, reference)
            scored.append(row)
        if progress:
            progress({"phase": "evaluating", "step": stop, "total": len(examples)})
    return scored


def _rank_labels(
    model: Any, tokenizer: Any, style: PromptStyle, prompts: list[list[int]], batch_size: int
) -> list[str]:
    label_ids = [target_ids(tokenizer, label) for label in style.labels]
    pairs = [(prompt, ids) for prompt in prompts for ids in label_ids]
    scores, _ = reply_logprobs(model, pairs, tokenizer.pad_token_id, batch_size)
    k = len(style.labels)
    return [
        style.labels[max(range(k), key=lambda j: scores[row * k + j][0])]
        for row in range(len(prompts))
    ]


def aggregate(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Mean of each metric over the scored examples, with their count under ``n``."""
    if not rows:
        return {"n": 0}
    names = [k for k in ("exact_match", "token_f1", "chrf", "nll") if k in rows[0]]
    return {"n": len(rows), **{k: sum(r[k] for r in rows) / len(rows) for k in names}}
