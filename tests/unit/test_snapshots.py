"""Snapshots: deterministic splits, dedupe and conflicts, regression set, immutability."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from feedback.snapshots import (
    build_snapshot,
    load_snapshot_examples,
    new_ground_truth_since_last_snapshot,
    remember_fixed_mistakes,
    split_of,
)
from feedback.store import connect
from feedback.writer import write_batch
from schemas import CorrectionEvent, FeedbackEvent, InferenceEvent
from schemas.tasks import TaskDefinition

T0 = datetime(2026, 11, 1, tzinfo=UTC)
TASK = TaskDefinition(
    name="spam", instruction="Is this email spam or ham?", kind="label", labels=["spam", "ham"]
)


@pytest.fixture
def db(tmp_path):
    connection = connect(tmp_path / "store.duckdb")
    yield connection
    connection.close()


def inference(i: int, text: str | None = None, output: str = "ham") -> InferenceEvent:
    return InferenceEvent(
        event_id=f"i{i}",
        occurred_at=T0 + timedelta(seconds=i),
        task="spam",
        input=text or f"email number {i}",
        output=output,
        base_model="smollm2",
    )


def accept(i: int) -> FeedbackEvent:
    return FeedbackEvent(
        event_id=f"a{i}",
        occurred_at=T0 + timedelta(minutes=5),
        task="spam",
        inference_id=f"i{i}",
        signal="accepted",
    )


def correct(i: int, output: str, minute: int = 10) -> CorrectionEvent:
    return CorrectionEvent(
        event_id=f"c{i}-{minute}",
        occurred_at=T0 + timedelta(minutes=minute),
        task="spam",
        inference_id=f"i{i}",
        corrected_output=output,
        reviewer="ana",
    )


def test_split_is_a_pure_function_of_the_id():
    splits = [split_of(f"id-{i}", 0.2) for i in range(2000)]
    assert splits == [split_of(f"id-{i}", 0.2) for i in range(2000)]
    assert 0.15 < splits.count("eval") / 2000 < 0.25


def test_snapshot_normalises_dedupes_and_flags_regressions(db, tmp_path):
    write_batch(
        db,
        [
            *[inference(i) for i in range(20)],
            *[accept(i) for i in range(20)],
            correct(3, " SPAM "),  # normalised to the label
            correct(4, "maybe"),  # not a label: dropped
            inference(50, text="email number 1"),
            correct(50, "spam", minute=20),  # dup input
        ],
    )
    snapshot = build_snapshot(db, task=TASK, snapshots_dir=tmp_path / "snaps")
    by_id = {e.inference_id: e for e in snapshot.examples}
    assert by_id["i3"].output == "spam" and not by_id["i3"].is_regression  # not yet promoted
    assert "i4" not in by_id and snapshot.stats["dropped_not_a_label"] == 1
    assert "i1" not in by_id and by_id["i50"].output == "spam"  # the later duplicate wins
    assert snapshot.stats["conflicting_duplicates"] == 1
    assert all(e.is_new for e in snapshot.examples)
    rows = load_snapshot_examples(snapshot.path)
    assert {r["id"] for r in rows} == set(by_id)
    lineage = db.execute(
        "SELECT count(*) FROM snapshot_examples WHERE snapshot_id = ?", [snapshot.snapshot_id]
    ).fetchone()
    assert lineage == (len(by_id),)


def test_identical_ground_truth_gives_the_same_snapshot(db, tmp_path):
    write_batch(db, [*[inference(i) for i in range(10)], *[accept(i) for i in range(10)]])
    first = build_snapshot(db, task=TASK, snapshots_dir=tmp_path)
    again = build_snapshot(db, task=TASK, snapshots_dir=tmp_path)
    assert again.snapshot_id == first.snapshot_id and again.reused
    assert new_ground_truth_since_last_snapshot(db, "spam") == 0
    write_batch(db, [inference(11), accept(11)])
    assert new_ground_truth_since_last_snapshot(db, "spam") == 1
    later = build_snapshot(
        db, task=TASK, snapshots_dir=tmp_path, baseline_snapshot_id=first.snapshot_id
    )
    assert later.snapshot_id != first.snapshot_id
    assert [e.inference_id for e in later.examples if e.is_new] == ["i11"]
    assert split_of("i3", 0.2) == next(e.split for e in later.examples if e.inference_id == "i3")


def test_a_promoted_fix_stays_in_the_regression_set(db, tmp_path):
    write_batch(db, [inference(1, output="ham"), correct(1, "spam"), inference(2), accept(2)])
    first = build_snapshot(db, task=TASK, snapshots_dir=tmp_path)
    assert remember_fixed_mistakes(db, task="spam", snapshot_id=first.snapshot_id) == 1
    write_batch(db, [correct(1, "ham", minute=30)])  # later a reviewer agrees with the model
    snapshot = build_snapshot(db, task=TASK, snapshots_dir=tmp_path)
    flags = {e.inference_id: (e.is_regression, e.output) for e in snapshot.examples}
    assert flags == {"i1": (True, "ham"), "i2": (False, "ham")}


def test_corrections_of_an_unpromoted_snapshot_stay_out_of_the_regression_set(db, tmp_path):
    write_batch(db, [inference(1, output="ham"), correct(1, "spam")])
    build_snapshot(db, task=TASK, snapshots_dir=tmp_path)
    later = build_snapshot(db, task=TASK, snapshots_dir=tmp_path)
    assert not later.examples[0].is_regression
