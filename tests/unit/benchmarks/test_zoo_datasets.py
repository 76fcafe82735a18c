"""The six zoo tasks on their real data: sizes, no held-out input seen in training, the same
split every time. Needs `make zoo-data` (`make test-zoo` runs it, then these); without the
data each test fails with the loader's message naming `make zoo-data`."""

from __future__ import annotations

import json
from functools import cache

import pytest

from benchmarks.zoo import TASKS, ZooTask, load_task
from benchmarks.zoo.datasets import debian_root
from benchmarks.zoo.sources import bible, construction_faq

pytestmark = pytest.mark.zoo


@cache
def task(name: str) -> ZooTask:
    return load_task(name)


def normalised(text: str) -> str:
    return " ".join(text.lower().split())


@pytest.mark.parametrize("name", list(TASKS))
def test_every_task_has_400_train_200_more_and_200_held_out(name):
    loaded = task(name)
    assert (len(loaded.train), len(loaded.more), len(loaded.held_out)) == (400, 200, 200)
    assert all(e["input"].strip() and e["output"].strip() for e in loaded.train + loaded.held_out)


@pytest.mark.parametrize("name", list(TASKS))
def test_no_held_out_input_is_in_train_or_more_and_no_more_input_in_train(name):
    loaded = task(name)
    held_out = {normalised(e["input"]) for e in loaded.held_out}
    train = {normalised(e["input"]) for e in loaded.train}
    more = {normalised(e["input"]) for e in loaded.more}
    assert not held_out & (train | more)
    assert not more & train
    assert len(train) == 400 and len(more) == 200 and len(held_out) == 200


@pytest.mark.parametrize("name", list(TASKS))
def test_loading_again_gives_the_same_split(name):
    assert load_task(name) == task(name)


@pytest.mark.parametrize("name", ["spam", "noun-supersense"])
def test_label_tasks_answer_with_their_labels_and_hold_out_several(name):
    loaded = task(name)
    assert loaded.labels is not None
    assert {e["output"] for e in loaded.train + loaded.more + loaded.held_out} <= set(loaded.labels)
    assert len({e["output"] for e in loaded.held_out}) == len(loaded.labels)


def test_spam_keeps_the_corpus_imbalance():
    spam_share = sum(e["output"] == "spam" for e in task("spam").train) / 400
    assert 0.2 < spam_share < 0.45  # the corpus is 31% spam; a balanced draw would be 0.5


def test_the_bible_rewrite_holds_out_whole_books():
    book_of = {normalised(p["input"]): p["book"] for p in bible.kjv_to_web(debian_root())}
    loaded = task("modern-english")
    held_books = {book_of[normalised(e["input"])] for e in loaded.held_out}
    trained_books = {book_of[normalised(e["input"])] for e in loaded.train + loaded.more}
    assert len(held_books) >= 3
    assert not held_books & trained_books


def test_the_bible_rewrite_pairs_a_verse_with_the_same_verse():
    kjv = bible.verses(debian_root(), bible.KJV)
    web = bible.verses(debian_root(), bible.WEB)
    assert len(kjv) == 31_102  # every verse of the KJV versification
    assert "Yahweh is my shepherd" in bible._plain(web[("Ps", 23, 1)])
    assert "beloved Son" in bible._plain(web[("Matt", 3, 17)])


def test_the_faq_keeps_a_question_its_translation_and_its_duplicates_on_one_side():
    ids_of: dict[str, set[str]] = {}
    for example in construction_faq.questions_and_answers():
        ids_of.setdefault(normalised(example["input"]), set()).add(example["id"])
    loaded = task("construction-faq")
    held_ids = set().union(*(ids_of[normalised(e["input"])] for e in loaded.held_out))
    trained = loaded.train + loaded.more
    assert not held_ids & set().union(*(ids_of[normalised(e["input"])] for e in trained))


def test_email_headers_answers_are_json_with_the_named_fields():
    for example in task("email-headers").held_out:
        fields = json.loads(example["output"])
        assert list(fields) == ["sender_name", "sender_email", "reply_to", "subject", "date"]
        assert "@" in fields["sender_email"] and len(fields["date"]) == 10
