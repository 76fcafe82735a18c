"""Metrics, paired statistics and the promotion gate: pure functions with known answers."""

from __future__ import annotations

import random

import pytest
from sacrebleu.metrics import CHRF
from sacrebleu.tokenizers.tokenizer_zh import TokenizerZh

from schemas.tasks import GatePolicy, TaskDefinition
from training.metrics import chrf, exact_match, token_f1, tokens
from training.paired_stats import bootstrap_mean_ci, mcnemar_exact
from training.promotion_gate import decide


def test_text_metrics_known_values():
    assert token_f1("the cat sat", "the cat sat") == 1.0
    assert token_f1("the cat", "the cat sat down") == pytest.approx(2 * 1 * 0.5 / 1.5)
    assert token_f1("dog", "cat") == 0.0
    assert chrf("same text", "same text") == pytest.approx(1.0)
    assert chrf("abc", "xyz") == 0.0
    assert 0.0 < chrf("The permit takes 10 weeks", "A permit takes ten weeks") < 1.0
    assert exact_match(" Spam ", "spam") == 1.0


@pytest.mark.parametrize(
    "text",
    ["建筑许可证需要十周", "施工许可 Takes 10 weeks", "建筑 许可证"],
)
def test_unspaced_scripts_count_characters_as_sacrebleus_chinese_tokenizer_does(text):
    assert tokens(text) == TokenizerZh()(text).lower().split()


def test_japanese_kana_and_thai_count_characters_too():
    assert tokens("許可はかかります") == ["許", "可", "は", "か", "か", "り", "ま", "す"]
    assert len(tokens("ข้อมูล")) == 6  # Thai: every code point, vowel marks included


def test_token_f1_gives_partial_credit_in_chinese_instead_of_all_or_nothing():
    # 7 of 9 characters shared: F1 2 * 7/8 * 7/9 / (7/8 + 7/9), not 0 for one unequal "word"
    expected = 2 * (7 / 8) * (7 / 9) / (7 / 8 + 7 / 9)
    assert token_f1("建筑许可需要八周", "建筑许可证需要十周") == pytest.approx(expected)


def test_the_default_text_metric_charges_a_chatty_answer_for_its_padding():
    """A reply as short as the reference against a paragraph around it (real word-definition
    answers): token F1, the text default, prefers the gloss; chrF (recall x2) the paragraph."""
    reference = "a small part that can be considered separately from the whole"
    gloss = "a small part of something"
    paragraph = (
        'The word "detail" is a noun in the context of language, referring to a specific type '
        'of information that is considered to be essential. In this example, "detail" is used '
        "to describe the quality of a product or service."
    )
    assert TaskDefinition(name="t", kind="text", instruction="Define it.").metric == "token_f1"
    assert token_f1(gloss, reference) > token_f1(paragraph, reference)
    assert chrf(gloss, reference) < chrf(paragraph, reference)


@pytest.mark.parametrize(
    ("prediction", "reference"),
    [
        ("The permit takes 10 weeks", "A permit takes ten weeks"),
        ("ab", "abc"),  # orders only one side has do not count
        ("abc", "ab"),
        ("Hello, World!", "hello world"),
        ("ñandú café", "nandu cafe"),
        ("a b", "ab"),  # whitespace is ignored
        ("la licencia de obra menor tarda unas 4 semanas", "la licencia tarda cuatro semanas"),
        ("x", ""),
    ],
)
def test_chrf_is_sacrebleus_sentence_chrf_on_the_gates_0_to_1_scale(prediction, reference):
    expected = CHRF().sentence_score(prediction, [reference]).score / 100
    assert chrf(prediction, reference) == pytest.approx(expected, abs=1e-12)


def test_chrf_known_values():
    # 1-grams: P 1, R 2/3; 2-grams: P 1, R 1/2; no 3-gram in the prediction: order skipped.
    # F2 of the averages (1, 7/12) = 5 * 7/12 / (4 + 7/12) = 7/11.
    assert chrf("ab", "abc") == pytest.approx(7 / 11)
    assert chrf("", "") == chrf("  ", " ") == 1.0  # nothing asked, nothing said: right


def test_mcnemar_exact_matches_hand_computed_binomials():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 0) == pytest.approx(2 / 32)  # 2 * 0.5**5
    assert mcnemar_exact(8, 2) == pytest.approx(2 * (1 + 10 + 45) / 1024)
    assert mcnemar_exact(3, 3) == 1.0


def test_bootstrap_interval_covers_the_true_mean_difference():
    rng = random.Random(1)
    differences = [0.2 + rng.gauss(0, 0.5) for _ in range(400)]
    interval = bootstrap_mean_ci(differences, seed=3)
    assert interval.low < 0.2 < interval.high
    assert interval.low < interval.mean < interval.high
    assert bootstrap_mean_ci(differences, seed=3) == interval  # seeded


def rows(correct: list[bool], prefix: str = "e") -> list[dict]:
    return [
        {"id": f"{prefix}{i}", "exact_match": float(c), "prediction": "x", "reference": "y"}
        for i, c in enumerate(correct)
    ]


def scores(cand: list[bool], champ: list[bool], reg_cand=(), reg_champ=()) -> dict:
    return {
        "eval": {"candidate": rows(cand), "champion": rows(champ)},
        "regression": {
            "candidate": rows(list(reg_cand), "r"),
            "champion": rows(list(reg_champ), "r"),
        },
    }


AUTO = GatePolicy(mode="auto", min_eval_size=30)


def test_clearly_better_candidate_is_promoted_with_evidence():
    decision = decide(
        scores([True] * 45 + [False] * 5, [True] * 25 + [False] * 25), AUTO, metric="exact_match"
    )
    assert decision.verdict == "promote"
    evidence = decision.evidence["eval"]
    assert evidence["delta_low"] > 0 and evidence["wins"] == 20 and evidence["losses"] == 0
    assert evidence["mcnemar_p"] < 0.001
    assert evidence["win_examples"][0]["id"] == "e25"


def test_worse_candidate_is_rejected_with_a_reason():
    decision = decide(
        scores([True] * 20 + [False] * 30, [True] * 40 + [False] * 10), AUTO, metric="exact_match"
    )
    assert decision.verdict == "reject"
    assert "not a measurable improvement" in decision.reasons[0]
    assert decision.evidence["eval"]["losses"] == 20


def test_too_small_eval_set_is_rejected():
    decision = decide(scores([True] * 10, [False] * 10), AUTO, metric="exact_match")
    assert decision.verdict == "reject" and "only 10 eval examples" in decision.reasons[0]


def test_regression_on_fixed_mistakes_rejects_an_otherwise_better_candidate():
    better = ([True] * 45 + [False] * 5, [True] * 25 + [False] * 25)
    decision = decide(
        scores(*better, reg_cand=[False] * 10, reg_champ=[True] * 10), AUTO, metric="exact_match"
    )
    assert decision.verdict == "reject"
    assert "falls back by 1.000" in decision.reasons[-1]
    tolerant = GatePolicy(mode="auto", min_eval_size=30, regression_tolerance=0.2)
    slight = decide(
        scores(*better, reg_cand=[True] * 9 + [False], reg_champ=[True] * 10),
        tolerant,
        metric="exact_match",
    )
    assert slight.verdict == "promote"


def test_manual_policy_waits_for_an_operator():
    manual = GatePolicy(mode="manual", min_eval_size=30)
    decision = decide(scores([True] * 45 + [False] * 5, [False] * 50), manual, metric="exact_match")
    assert decision.verdict == "await_approval"


def test_lower_is_better_metrics_are_compared_the_right_way():
    cand = [{"id": f"e{i}", "nll": 1.0} for i in range(40)]
    champ = [{"id": f"e{i}", "nll": 2.0} for i in range(40)]
    decision = decide({"eval": {"candidate": cand, "champion": champ}}, AUTO, metric="nll")
    assert decision.verdict == "promote"
