"""Per-example metrics: exact match for labels, token F1 and chrF for text."""

from __future__ import annotations

import re
from collections import Counter

_TOKEN = re.compile(r"\w+", re.UNICODE)


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


def exact_match(prediction: str, reference: str) -> float:
    return float(normalise(prediction) == normalise(reference))


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD-style F1 over lowercased word tokens."""
    predicted, expected = _TOKEN.findall(prediction.lower()), _TOKEN.findall(reference.lower())
    if not predicted and not expected:
        return 1.0
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def chrf(prediction: str, reference: str, *, max_n: int = 6, beta: float = 2.0) -> float:
    """chrF (Popović 2015): character n-gram F-beta averaged over n = 1..6, spaces removed,
    on a 0-1 scale. Orders that neither side has are skipped, as in sacrebleu."""
    hyp, ref = prediction.replace(" ", ""), reference.replace(" ", "")
    if not hyp and not ref:
        return 1.0
    precisions, recalls = [], []
    for n in range(1, max_n + 1):
        hyp_grams = Counter(hyp[i : i + n] for i in range(len(hyp) - n + 1))
        ref_grams = Counter(ref[i : i + n] for i in range(len(ref) - n + 1))
        if not hyp_grams and not ref_grams:
            continue
        overlap = sum((hyp_grams & ref_grams).values())
        precisions.append(overlap / sum(hyp_grams.values()) if hyp_grams else 0.0)
        recalls.append(overlap / sum(ref_grams.values()) if ref_grams else 0.0)
    if not precisions:
        return 0.0
    precision, recall = sum(precisions) / len(precisions), sum(recalls) / len(recalls)
    if precision + recall == 0:
        return 0.0
    return (1 + beta**2) * precision * recall / (beta**2 * precision + recall)


HIGHER_IS_BETTER = {"exact_match": True, "token_f1": True, "chrf": True, "nll": False}
