"""Retention of raw events and garbage collection of adapters (``flywheel gc``), on a real
DuckDB file and real adapter directories."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from feedback.store import connect
from feedback.writer import Rejection, write_batch
from schemas import CorrectionEvent, FeedbackEvent, InferenceEvent
from schemas.tasks import RetentionPolicy, TaskDefinition
from services.garbage_collection import collect_garbage
from tests.registry_fixtures import SPAM, T0, seed_registry, write_adapter
from training.cycle_records import start_cycle, update_cycle
from training.registry import promote, register_adapter
from training.task_records import create_task

MONTHLY = SPAM.model_copy(update={"retention": RetentionPolicy(raw_inference_days=30)})
FOREVER = TaskDefinition(name="faq", instruction="Answer the question.", kind="text")


@pytest.fixture
def db(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    connection = connect(tmp_path / "store.duckdb")
    yield connection
    connection.close()


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def inference(event_id: str, task: str = "spam", origin: str = "production") -> InferenceEvent:
    return InferenceEvent(
        event_id=event_id,
        occurred_at=T0,
        task=task,
        input=f"text of {event_id}",
        output="ham",
        base_model="smol",
        origin=origin,
    )


def feedback(event_id: str, inference_id: str, signal: str) -> FeedbackEvent:
    return FeedbackEvent(
        event_id=event_id, occurred_at=T0, task="spam", inference_id=inference_id, signal=signal
    )


def seed_events(db: duckdb.DuckDBPyConnection) -> None:
    """Task spam keeps raw events 30 days, task faq forever. Raw (never ground truth): r1,
    r2 (thumbs down only) and faq's f1. Ground truth: corrected, accepted and an import."""
    create_task(db, MONTHLY)
    create_task(db, FOREVER)
    write_batch(
        db,
        [
            inference("r1"),
            inference("r2"),
            inference("corrected"),
            inference("accepted"),
            inference("imported", origin="import"),
            inference("f1", task="faq"),
            feedback("fb-r2", "r2", "thumbs_down"),
            feedback("fb-accepted", "accepted", "accepted"),
            CorrectionEvent(
                event_id="c1",
                occurred_at=T0,
                task="spam",
                inference_id="corrected",
                corrected_output="spam",
                reviewer="ana",
            ),
        ],
        [Rejection("p:0:1", "kafka", "not JSON", b"{broken", event_type="inference", task="spam")],
    )


def inference_ids(db: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in db.execute("SELECT event_id FROM inferences").fetchall()}


def gc(db: duckdb.DuckDBPyConnection, tmp_path: Path, *, days: float, dry_run: bool = False):
    return collect_garbage(
        db,
        adapters_dir=tmp_path / "adapters",
        actor="ops",
        dry_run=dry_run,
        now=utcnow() + timedelta(days=days),
    )


def test_expired_raw_inferences_go_and_ground_truth_stays(db, tmp_path):
    seed_events(db)

    report = gc(db, tmp_path, days=31)

    assert inference_ids(db) == {"corrected", "accepted", "imported", "f1"}
    assert db.execute("SELECT event_id FROM feedback").fetchall() == [("fb-accepted",)]
    assert db.execute("SELECT count(*) FROM rejected_events").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM ground_truth").fetchone() == (3,)
    (spam,) = report["raw_events"]
    assert (spam["task"], spam["inferences"], spam["rejected_events"]) == ("spam", 2, 1)


def test_raw_inferences_younger_than_the_period_stay(db, tmp_path):
    seed_events(db)

    report = gc(db, tmp_path, days=29)

    assert len(inference_ids(db)) == 6
    assert report["raw_events"][0]["inferences"] == 0


def test_raw_inferences_in_a_snapshot_or_a_live_review_stay(db, tmp_path):
    seed_events(db)
    db.execute(
        "INSERT INTO snapshot_examples VALUES ('snap', 'r1', 'train', true, false, 'edit', 'h')"
    )
    lease_end = utcnow() + timedelta(days=60)
    db.execute(
        "INSERT INTO review_items VALUES ('r2', 'spam', 'ana', ?, ?, NULL, NULL, 'tok')",
        [utcnow(), lease_end],
    )

    gc(db, tmp_path, days=31)

    assert {"r1", "r2"} <= inference_ids(db)


def test_a_dry_run_reports_and_deletes_nothing(db, tmp_path):
    seed_events(db)
    orphan = tmp_path / "adapters" / ".adapter-killed"
    orphan.mkdir(parents=True)

    report = gc(db, tmp_path, days=31, dry_run=True)

    assert report["dry_run"] is True
    assert report["raw_events"][0]["inferences"] == 2
    assert report["orphan_dirs"] == [".adapter-killed"]
    assert len(inference_ids(db)) == 6
    assert db.execute("SELECT count(*) FROM rejected_events").fetchone() == (1,)
    assert orphan.is_dir()
    assert db.execute("SELECT count(*) FROM audit_log").fetchone() == (0,)


def register(db: duckdb.DuckDBPyConnection, home: Path, weights: bytes, parent: str | None) -> str:
    adapter_id = write_adapter(home / "adapters", weights)
    register_adapter(
        db,
        adapter_id=adapter_id,
        task="spam",
        base_model="smol",
        parent_adapter=parent,
        snapshot_id="snap",
        path=home / "adapters" / adapter_id,
        metadata={},
    )
    return adapter_id


def test_champions_their_history_parents_and_waiting_candidates_stay(db, tmp_path):
    first, rejected = seed_registry(db, tmp_path)  # two adapters with no parent
    promote(db, task="spam", adapter_id=first, actor="gate", action="promote", reason="")
    child = register(db, tmp_path, b"child of first", parent=first)
    promote(db, task="spam", adapter_id=child, actor="gate", action="promote", reason="")
    promote(db, task="spam", adapter_id=None, actor="ops", action="rollback", reason="")
    waiting = register(db, tmp_path, b"awaiting approval", parent=child)
    cycle = start_cycle(db, task="spam", trigger="test", lease_s=60)
    update_cycle(db, cycle, state="decided", adapter_id=waiting, verdict="await_approval")
    loser = register(db, tmp_path, b"rejected by the gate", parent=child)

    report = gc(db, tmp_path, days=0)

    assert sorted(report["adapters"]) == sorted([rejected, loser])
    registered = {r[0] for r in db.execute("SELECT adapter_id FROM adapters").fetchall()}
    assert registered == {first, child, waiting}
    on_disk = {p.name for p in (tmp_path / "adapters").iterdir()}
    assert on_disk == {first, child, waiting}


def test_an_ancestor_that_was_never_champion_stays(db, tmp_path):
    create_task(db, SPAM)
    grandparent = register(db, tmp_path, b"grandparent", parent=None)
    parent = register(db, tmp_path, b"parent", parent=grandparent)
    live = register(db, tmp_path, b"champion", parent=parent)
    promote(db, task="spam", adapter_id=live, actor="ops", action="promote", reason="")

    assert gc(db, tmp_path, days=0)["adapters"] == []
    assert (tmp_path / "adapters" / grandparent).is_dir()


def test_orphan_dirs_go_and_the_collection_is_audited(db, tmp_path):
    first, _ = seed_registry(db, tmp_path)
    promote(db, task="spam", adapter_id=first, actor="gate", action="promote", reason="")
    adapters = tmp_path / "adapters"
    (adapters / ".adapter-x1y2").mkdir()
    (adapters / ".adapter-x1y2" / "adapter_model.safetensors").write_bytes(b"half")
    (adapters / "0123456789abcdef").mkdir()  # complete but never registered
    (adapters / "README").write_text("a file, not an adapter directory")

    report = gc(db, tmp_path, days=0)

    assert report["orphan_dirs"] == [".adapter-x1y2", "0123456789abcdef"]
    assert sorted(p.name for p in adapters.iterdir()) == sorted([first, "README"])
    ((actor, details),) = db.execute(
        "SELECT actor, details FROM audit_log WHERE action = 'gc'"
    ).fetchall()
    assert actor == "ops"
    assert json.loads(details)["orphan_dirs"] == [".adapter-x1y2", "0123456789abcdef"]


def test_orphans_wait_while_a_cycle_runs(db, tmp_path):
    create_task(db, SPAM)
    in_flight = tmp_path / "adapters" / "fedcba9876543210"  # saved, not registered yet
    in_flight.mkdir(parents=True)
    cycle = start_cycle(db, task="spam", trigger="test", lease_s=3600)

    report = collect_garbage(
        db, adapters_dir=tmp_path / "adapters", actor="ops", dry_run=False, now=utcnow()
    )

    assert report["orphan_dirs"] == [] and report["orphans_deferred_by_cycles"] == [cycle]
    assert in_flight.is_dir()


def test_the_scheduler_audits_only_collections_that_removed_something(db, tmp_path):
    create_task(db, FOREVER)
    for _ in range(2):
        collect_garbage(
            db,
            adapters_dir=tmp_path / "adapters",
            actor="scheduler",
            dry_run=False,
            always_audit=False,
        )
    assert db.execute("SELECT count(*) FROM audit_log").fetchone() == (0,)


def test_a_task_file_sets_the_retention_period_and_tasks_keep_everything_by_default(tmp_path):
    from schemas.task_file import TaskFileError, load_task_file

    task_file = tmp_path / "task.yaml"
    task_file.write_text(
        "name: spam\nkind: label\nlabels: [spam, ham]\ninstruction: Spam?\n"
        "retention:\n  raw_inference_days: 30\n"
    )
    assert load_task_file(task_file).retention.raw_inference_days == 30
    assert SPAM.retention.raw_inference_days is None
    task_file.write_text(task_file.read_text().replace("30", "0"))
    with pytest.raises(TaskFileError, match=r"retention\.raw_inference_days"):
        load_task_file(task_file)
