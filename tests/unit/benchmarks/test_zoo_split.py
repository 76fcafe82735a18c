"""The zoo's split discipline on made-up data (fast, no data sets needed), and the message a
loader gives when its data set is not installed."""

from __future__ import annotations

import pytest

from benchmarks.zoo import SplitSizes, ZooDataMissing, ZooDataTooSmall, load_task
from benchmarks.zoo.task import split

SMALL = SplitSizes(train=40, more=20, held_out=20)


def numbered(n: int, *, group_size: int = 1) -> list[dict[str, str]]:
    return [
        {"input": f"question {i}", "output": f"answer {i}", "group": f"g{i // group_size}"}
        for i in range(n)
    ]


def inputs(examples: list[dict[str, str]]) -> set[str]:
    return {e["input"] for e in examples}


def test_parts_have_the_asked_sizes_and_share_no_input():
    train, more, held_out = split(numbered(200), SMALL, seed=0)
    assert (len(train), len(more), len(held_out)) == (40, 20, 20)
    assert len(inputs(train) | inputs(more) | inputs(held_out)) == 80


def test_the_same_seed_gives_the_same_split_and_another_seed_another():
    assert split(numbered(200), SMALL, seed=3) == split(numbered(200), SMALL, seed=3)
    assert split(numbered(200), SMALL, seed=3)[2] != split(numbered(200), SMALL, seed=4)[2]


def test_an_input_repeated_with_other_spacing_or_case_is_in_one_part_only():
    examples = numbered(100)
    examples += [{"input": "  QUESTION   7 ", "output": "other"} for _ in range(50)]
    train, more, held_out = split(examples, SMALL, seed=0)
    seen = [" ".join(e["input"].lower().split()) for e in train + more + held_out]
    assert len(seen) == len(set(seen))


def test_a_group_is_held_out_whole_or_not_at_all():
    examples = numbered(400, group_size=10)
    group_of = {e["input"]: e["group"] for e in examples}
    train, more, held_out = split(examples, SMALL, seed=1, group=lambda e: e["group"])
    held_groups = {group_of[e["input"]] for e in held_out}
    assert not held_groups & {group_of[e["input"]] for e in train + more}


def test_held_out_share_spreads_the_held_out_draw_over_more_groups():
    examples = numbered(2000, group_size=100)
    group_of = {e["input"]: e["group"] for e in examples}
    narrow = split(examples, SMALL, seed=1, group=lambda e: e["group"])[2]
    wide = split(examples, SMALL, seed=1, group=lambda e: e["group"], held_out_share=0.3)[2]
    assert len({group_of[e["input"]] for e in narrow}) == 1
    assert len({group_of[e["input"]] for e in wide}) >= 3


def test_parts_hold_only_input_and_output():
    train, more, held_out = split(numbered(200), SMALL, seed=0, group=lambda e: e["group"])
    assert {tuple(sorted(e)) for e in train + more + held_out} == {("input", "output")}


def test_too_few_examples_is_an_error_that_says_so():
    with pytest.raises(ZooDataTooSmall, match="cannot give 40 train"):
        split(numbered(70), SMALL, seed=0)


@pytest.mark.parametrize("name", ["noun-supersense", "modern-english", "word-definition"])
def test_a_task_whose_debian_data_is_missing_names_make_zoo_data(name, tmp_path, monkeypatch):
    monkeypatch.setenv("FLYWHEEL_ZOO_DATA_DIR", str(tmp_path))
    with pytest.raises(ZooDataMissing, match=r"make zoo-data"):
        load_task(name)


@pytest.mark.parametrize("name", ["spam", "email-headers"])
def test_a_task_whose_corpus_is_missing_names_make_zoo_data(name, tmp_path, monkeypatch):
    monkeypatch.setenv("FLYWHEEL_SAMPLE_DATA_DIR", str(tmp_path))
    with pytest.raises(ZooDataMissing, match=r"make zoo-data"):
        load_task(name)


def test_an_unknown_task_name_lists_the_tasks():
    with pytest.raises(KeyError, match="construction-faq"):
        load_task("nope")
