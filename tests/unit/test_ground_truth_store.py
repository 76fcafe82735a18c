"""Writer idempotency and the ground-truth rules, on a real DuckDB file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from feedback.exceptions import StoreLockedError
from feedback.migrations import MIGRATIONS
from feedback.store import connect, schema_version
from feedback.writer import Rejection, dedupe, write_batch
from schemas import CorrectionEvent, FeedbackEvent, InferenceEvent

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def db(tmp_path):
    connection = connect(tmp_path / "store.duckdb")
    yield connection
    connection.close()


def inference(event_id: str, output: str = "ham", origin: str = "production") -> InferenceEvent:
    return InferenceEvent(
        event_id=event_id,
        occurred_at=T0,
        task="spam",
        input=f"in {event_id}",
        output=output,
        base_model="smollm2",
        origin=origin,
    )


def correction(event_id: str, inference_id: str, output: str, minutes: int = 1) -> CorrectionEvent:
    return CorrectionEvent(
        event_id=event_id,
        occurred_at=T0 + timedelta(minutes=minutes),
        task="spam",
        inference_id=inference_id,
        corrected_output=output,
        reviewer="ana",
    )


def feedback(event_id: str, inference_id: str, signal: str, **extra) -> FeedbackEvent:
    return FeedbackEvent(
        event_id=event_id,
        occurred_at=T0 + timedelta(minutes=2),
        task="spam",
        inference_id=inference_id,
        signal=signal,
        **extra,
    )


def truth(db) -> dict[str, tuple[str, str]]:
    rows = db.execute("SELECT inference_id, output, source FROM ground_truth").fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def test_migrations_are_applied_once(tmp_path):
    path = tmp_path / "store.duckdb"
    connect(path).close()
    again = connect(path)
    assert schema_version(again) == MIGRATIONS[-1][0]
    assert again.execute("SELECT count(*) FROM schema_migrations").fetchone() == (len(MIGRATIONS),)
    again.close()


def test_second_writer_gets_a_clear_lock_error(tmp_path):
    """DuckDB's lock is per process; a child process stands in for a second control plane."""
    import subprocess
    import sys

    path = tmp_path / "store.duckdb"
    connect(path).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb,time; c=duckdb.connect({str(path)!r}); "
            "print('ready', flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreLockedError, match="Only one Flywheel control plane"):
            connect(path)
    finally:
        holder.kill()
        holder.wait()


def test_batch_and_replay_store_each_event_once(db):
    events = [inference("a"), inference("b"), inference("a")]
    assert len(dedupe(events)) == 2
    first = write_batch(db, events)
    assert first.stored == {"inference": 2} and first.duplicates == 1
    replay = write_batch(db, events)
    assert replay.stored == {"inference": 0} and replay.duplicates == 3
    assert db.execute("SELECT count(*) FROM inferences").fetchone() == (2,)


def test_rejections_are_idempotent_by_source_position(db):
    bad = Rejection.of(
        rejection_id="flywheel.inference:0:7",
        source="kafka:flywheel.inference",
        reason="input: too long",
        raw=b'{"task": "spam", "event_id": "z"}',
        event_type="inference",
    )
    assert write_batch(db, [], [bad]).rejected == 1
    assert write_batch(db, [], [bad]).rejected == 0
    row = db.execute("SELECT event_type, task, event_id, reason FROM rejected_events").fetchone()
    assert row == ("inference", "spam", "z", "input: too long")


def test_latest_correction_wins_and_accepted_output_counts(db):
    write_batch(
        db,
        [
            inference("i1"),
            inference("i2", output="spam"),
            inference("i3"),
            correction("c1", "i1", "spam", minutes=1),
            correction("c2", "i1", "ham", minutes=5),
            correction("c3", "i1", "spam", minutes=3),
            feedback("f1", "i2", "accepted"),
            feedback("f2", "i3", "thumbs_down"),
        ],
    )
    assert truth(db) == {"i1": ("ham", "correction"), "i2": ("spam", "accepted")}


def test_correction_before_its_inference_joins_when_it_arrives(db):
    write_batch(db, [correction("early", "late-inference", "spam")])
    assert truth(db) == {}
    write_batch(db, [inference("late-inference")])
    assert truth(db) == {"late-inference": ("spam", "correction")}


def test_user_edit_is_a_correction_and_imports_are_ground_truth(db):
    write_batch(
        db,
        [
            inference("i1"),
            feedback("e1", "i1", "edited", edited_output="spam"),
            inference("imp", output="ham", origin="import"),
        ],
    )
    assert truth(db) == {"i1": ("spam", "edit"), "imp": ("ham", "import")}
