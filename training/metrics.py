"""Per-example metrics: exact match for labels, token F1 and chrF for text.

Token F1 is the default for text tasks: it weighs precision and recall alike, so a chatty
answer three times the reference's length pays for its padding. chrF (beta 2) weighs recall
twice as much as precision and can prefer such an answer to a reply as short as the
reference (``benchmarks/task_zoo.py``'s word-definition task; README).
"""

from __future__ import annotations

import re
from collections import Counter

from sacrebleu.metrics import CHRF

# Scripts written without spaces between words: each character is a token, as sacrebleu's
# Chinese tokenizer does for BLEU. Elsewhere a token is a run of letters and digits.
_UNSPACED = "\u0e00-\u0e7f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_UNSPACED}]|[^\W{_UNSPACED}]+")
_CHRF = CHRF(char_order=6, word_order=0, beta=2)


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


def exact_match(prediction: str, reference: str) -> float:
    return float(normalise(prediction) == normalise(reference))


def tokens(text: str) -> list[str]:
    """The lowercased tokens token F1 counts: words, and single characters of unspaced scripts."""
    return _TOKEN.findall(text.lower())


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD-style F1 over lowercased word tokens (characters in Chinese, Japanese, Thai)."""
    predicted, expected = tokens(prediction), tokens(reference)
    if not predicted and not expected:
        return 1.0
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def chrf(prediction: str, reference: str) -> float:
    """chrF (Popović 2015) as sacrebleu computes it (character 6-grams, beta 2, whitespace
    ignored), on the 0-1 scale of the other metrics and the gate's ``min_delta``. An empty
    reply to an empty reference scores 1, as in ``token_f1``; sacrebleu says 0."""
    if not "".join(prediction.split()) and not "".join(reference.split()):
        return 1.0
    return _CHRF.sentence_score(prediction, [reference]).score / 100


HIGHER_IS_BETTER = {"exact_match": True, "token_f1": True, "chrf": True, "nll": False}
