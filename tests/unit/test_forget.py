"""``flywheel forget`` on a real DuckDB file: what an erasure deletes, keeps, taints and
refuses afterwards, and the file rewrite that leaves no deleted bytes behind."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from feedback.compaction import compact
from feedback.erased_ids import erased_among
from feedback.erasure import Selector, SelectorError
from feedback.migrations import MIGRATIONS
from feedback.review_queue import lease_next
from feedback.snapshots import build_snapshot
from feedback.spool import Spool
from feedback.store import connect, schema_version
from feedback.writer import Rejection, write_batch
from schemas import CorrectionEvent, FeedbackEvent, InferenceEvent
from schemas.tasks import TaskDefinition
from tests.registry_fixtures import SPAM, T0, corrupt, write_adapter
from training.cycle_erasure import without_examples
from training.forget import forget
from training.registry import champion, list_adapters, promote, register_adapter
from training.taint import pending_retrains, training_parent
from training.task_records import create_task

SECRET = "MARKER-hello-from-user-4711"


def inference(event_id: str, user: str, text: str, *, seconds: int = 0) -> InferenceEvent:
    return InferenceEvent(
        event_id=event_id,
        occurred_at=T0 + timedelta(seconds=seconds),
        task="spam",
        input=text,
        output="ham",
        base_model="smol",
        metadata={"user": user},
    )


def accepted(event_id: str, inference_id: str) -> FeedbackEvent:
    return FeedbackEvent(
        event_id=event_id,
        occurred_at=T0 + timedelta(minutes=5),
        task="spam",
        inference_id=inference_id,
        signal="accepted",
    )


@pytest.fixture
def store(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    connection = connect(tmp_path / "flywheel.duckdb")
    create_task(connection, SPAM)
    yield connection
    connection.close()


def erase(connection: duckdb.DuckDBPyConnection, home: Path, selector: Selector, **kw):
    return forget(
        connection,
        selector,
        actor=kw.get("actor", "ana"),
        spool_dir=home / "spool",
        cycles_dir=home / "cycles",
    )


def seed_users(connection: duckdb.DuckDBPyConnection) -> None:
    """User 4711: two accepted inferences, one corrected, one with a review item and a
    rejected feedback event; user 1: three accepted inferences."""
    events = [inference(f"u{i}", "4711", f"{SECRET} {i}", seconds=i) for i in range(3)]
    events += [inference(f"o{i}", "1", f"other email {i}", seconds=10 + i) for i in range(3)]
    events += [accepted(f"fa-u{i}", f"u{i}") for i in range(2)]
    events += [accepted(f"fa-o{i}", f"o{i}") for i in range(3)]
    events.append(
        CorrectionEvent(
            event_id="c-u2",
            occurred_at=T0 + timedelta(minutes=6),
            task="spam",
            inference_id="u2",
            corrected_output="spam",
            reviewer="rita",
        )
    )
    bad_feedback = json.dumps(
        {"type": "feedback", "event_id": "bad-1", "inference_id": "u0", "signal": "meh"}
    ).encode()
    rejection = Rejection.of(
        rejection_id="flywheel.feedback:0:9", source="kafka", reason="bad signal", raw=bad_feedback
    )
    write_batch(connection, events, [rejection])
    connection.execute(
        "INSERT INTO regression_examples VALUES ('spam', 'u2', now()::TIMESTAMP, 'fixed')"
    )


def count(connection: duckdb.DuckDBPyConnection, sql: str) -> int:
    return connection.execute(sql).fetchone()[0]


def test_a_selector_names_exactly_one_thing():
    with pytest.raises(SelectorError, match="exactly one"):
        Selector()
    with pytest.raises(SelectorError, match="exactly one"):
        Selector(inference_id="a", event_id="b")
    with pytest.raises(SelectorError, match="KEY=VALUE"):
        Selector.from_metadata("user")
    assert Selector.from_metadata("user=4711").describe() == "metadata user=4711"


def test_metadata_erasure_deletes_the_users_events_and_everything_attached(store, tmp_path):
    seed_users(store)
    store.execute(
        "INSERT INTO review_items VALUES ('u1', 'spam', 'rita', now(), now(), NULL, NULL, 'h')"
    )
    before = count(store, "SELECT count(*) FROM ground_truth")

    report = erase(store, tmp_path, Selector.from_metadata("user=4711"))

    assert report.erased == {
        "inference": 3,
        "feedback": 2,
        "correction": 1,
        "review_item": 1,
        "dead_letter": 1,
        "spooled": 0,
    }
    assert report.ground_truth_removed == 3
    assert count(store, "SELECT count(*) FROM ground_truth") == before - 3
    for table, column in (
        ("inferences", "event_id"),
        ("feedback", "inference_id"),
        ("corrections", "inference_id"),
        ("review_items", "inference_id"),
        ("regression_examples", "inference_id"),
    ):
        assert count(store, f"SELECT count(*) FROM {table} WHERE {column} LIKE 'u%'") == 0, table
    assert count(store, "SELECT count(*) FROM rejected_events") == 0
    # the other user's records are untouched
    assert count(store, "SELECT count(*) FROM inferences WHERE event_id LIKE 'o%'") == 3
    assert count(store, "SELECT count(*) FROM feedback WHERE inference_id LIKE 'o%'") == 3


def test_an_erased_event_sent_again_is_refused_not_stored(store, tmp_path):
    seed_users(store)
    erase(store, tmp_path, Selector.from_metadata("user=4711"))
    replay = [inference(f"u{i}", "4711", f"{SECRET} {i}") for i in range(3)]
    replay += [accepted("fa-u0", "u0"), accepted("late-feedback", "u1")]  # new id, erased target

    result = write_batch(store, [*replay, inference("fresh", "1", "a new email")])

    assert result.erased == 5
    assert result.stored == {"inference": 1}
    assert count(store, "SELECT count(*) FROM inferences WHERE event_id LIKE 'u%'") == 0
    assert count(store, "SELECT count(*) FROM feedback WHERE event_id = 'late-feedback'") == 0
    # what is kept is a keyed hash: no erased id is readable anywhere in the tables
    hashes = [r[0] for r in store.execute("SELECT id_hash FROM erased_events").fetchall()]
    assert hashes and not any(h.startswith("u") or "fa-u" in h for h in hashes)
    assert erased_among(store, ["u0", "o0"]) == {"u0"}


def test_an_inference_id_erased_before_it_arrives_is_refused_when_it_does(store, tmp_path):
    report = erase(store, tmp_path, Selector(inference_id="not-yet"))
    assert report.erased["inference"] == 0
    result = write_batch(store, [inference("not-yet", "9", "arrives late")])
    assert result.erased == 1 and result.stored == {}


def test_event_id_of_a_feedback_event_erases_only_that_event(store, tmp_path):
    seed_users(store)
    report = erase(store, tmp_path, Selector(event_id="fa-o0"))
    assert report.erased["feedback"] == 1 and report.erased["inference"] == 0
    assert count(store, "SELECT count(*) FROM inferences WHERE event_id = 'o0'") == 1
    assert count(store, "SELECT count(*) FROM feedback WHERE event_id = 'fa-o0'") == 0


def adapter(store, home: Path, weights: bytes, snapshot_id: str, parent: str | None) -> str:
    adapter_id = write_adapter(home / "adapters", weights)
    register_adapter(
        store,
        adapter_id=adapter_id,
        task="spam",
        base_model="smol",
        parent_adapter=parent,
        snapshot_id=snapshot_id,
        path=home / "adapters" / adapter_id,
        metadata={},
    )
    return adapter_id


def lineage(store, home: Path) -> tuple[str, str, str, Path]:
    """An untainted parent (trained before the user's data arrived), a champion trained on
    the user's data warm-started from it, and that champion's child; returns the three ids
    and the champion's snapshot file."""
    write_batch(store, [inference(f"o{i}", "1", f"other {i}", seconds=i) for i in range(3)])
    write_batch(store, [accepted(f"fa-o{i}", f"o{i}") for i in range(3)])
    early = build_snapshot(store, task=SPAM, snapshots_dir=home / "snapshots")
    parent = adapter(store, home, b"parent", early.snapshot_id, None)
    seed_users(store)
    later = build_snapshot(store, task=SPAM, snapshots_dir=home / "snapshots")
    tainted = adapter(store, home, b"champion", later.snapshot_id, parent)
    child = adapter(store, home, b"child", early.snapshot_id, tainted)
    for adapter_id in (parent, tainted):
        promote(store, task="spam", adapter_id=adapter_id, actor="op", action="promote", reason="")
    return parent, tainted, child, later.path


def test_lineage_rewrites_snapshots_and_taints_adapters_and_their_descendants(store, tmp_path):
    parent, tainted, child, snapshot_file = lineage(store, tmp_path)
    assert SECRET.encode() in snapshot_file.read_bytes()

    report = erase(store, tmp_path, Selector.from_metadata("user=4711"))

    assert report.adapters_tainted == [tainted, child]  # the child started from its weights
    flags = {a["adapter_id"]: a["tainted"] for a in list_adapters(store, "spam")}
    assert flags == {parent: False, tainted: True, child: True}
    ids = pq.read_table(snapshot_file).column("id").to_pylist()
    assert ids and not [i for i in ids if i.startswith("u")]
    assert SECRET.encode() not in snapshot_file.read_bytes()
    n_train, n_eval, stats = store.execute(
        "SELECT n_train, n_eval, stats FROM snapshots WHERE path = ?", [str(snapshot_file)]
    ).fetchone()
    assert n_train + n_eval == len(ids) and json.loads(stats)["erased"] == 3
    assert count(store, "SELECT count(*) FROM snapshot_examples WHERE inference_id LIKE 'u%'") == 0


def test_retrain_policy_keeps_the_champion_and_owes_a_cycle_from_the_untainted_ancestor(
    store, tmp_path
):
    parent, tainted, _child, _ = lineage(store, tmp_path)

    report = erase(store, tmp_path, Selector.from_metadata("user=4711"))

    assert [p.as_dict()["action"] for p in report.policies] == ["retrain_owed"]
    assert champion(store, "spam") == tainted  # live until a retrained candidate passes
    assert pending_retrains(store) == ["spam"]
    assert training_parent(store, "spam") == parent  # never warm-started from tainted weights


def test_rollback_policy_rolls_back_to_the_newest_untainted_ancestor(store, tmp_path):
    create_task(store, SPAM.model_copy(update={"erasure_policy": "rollback"}), replace=True)
    parent, tainted, _child, _ = lineage(store, tmp_path)

    report = erase(store, tmp_path, Selector.from_metadata("user=4711"), actor="dpo")

    assert champion(store, "spam") == parent
    assert report.policies[0].champion == tainted
    assert report.promotions()[0]["adapter_id"] == parent
    assert pending_retrains(store) == []
    last = store.execute(
        "SELECT actor, action FROM champion_history WHERE until IS NULL AND task = 'spam'"
    ).fetchone()
    assert last == ("dpo", "rollback")


def test_rollback_skips_an_ancestor_with_corrupted_files_down_to_the_base_model(store, tmp_path):
    create_task(store, SPAM.model_copy(update={"erasure_policy": "rollback"}), replace=True)
    parent, _tainted, _child, _ = lineage(store, tmp_path)
    corrupt(tmp_path / "adapters", parent)

    erase(store, tmp_path, Selector.from_metadata("user=4711"))

    assert champion(store, "spam") is None


def test_erasure_policy_is_part_of_the_task_definition_and_defaults_to_retrain():
    assert SPAM.erasure_policy == "retrain"
    with pytest.raises(ValueError, match="erasure_policy"):
        TaskDefinition.model_validate({**SPAM.model_dump(), "erasure_policy": "ignore"})


def test_audit_records_who_which_selector_and_counts_never_content(store, tmp_path):
    seed_users(store)
    erase(store, tmp_path, Selector.from_metadata("user=4711"), actor="dpo-token")
    actor, details = store.execute(
        "SELECT actor, details FROM audit_log WHERE action = 'forget'"
    ).fetchone()
    assert actor == "dpo-token"
    recorded = json.loads(details)
    assert recorded["selector"] == "metadata user=4711"
    assert recorded["erased"]["inference"] == 3
    assert SECRET not in details and "u0" not in details


def test_spooled_copies_are_cut_from_their_segments(store, tmp_path):
    seed_users(store)
    spool = Spool(tmp_path / "spool" / "server-a")
    ours = [inference("u0", "4711", f"{SECRET} 0"), inference("s9", "4711", f"{SECRET} 9")]
    theirs = inference("o7", "1", "other spooled email")
    spool.append([("t", b"k", e.model_dump_json().encode()) for e in (*ours, theirs)])
    only_ours = Spool(tmp_path / "spool" / "server-b")
    only_ours.append([("t", b"k", inference("s8", "4711", SECRET).model_dump_json().encode())])

    report = erase(store, tmp_path, Selector.from_metadata("user=4711"))

    assert report.erased["spooled"] == 3
    remaining = [json.loads(v) for s in (spool,) for _, records in s.drain() for _, _, v in records]
    assert [e["event_id"] for e in remaining] == ["o7"]
    assert only_ours.segments() == []  # nothing left in it: deleted
    for path in (tmp_path / "spool").rglob("*"):
        assert not path.is_file() or SECRET.encode() not in path.read_bytes()
    # a spooled event never stored is erased too: its copy in Kafka is refused
    assert write_batch(store, [inference("s9", "4711", "x")]).erased == 1


def test_gate_evidence_loses_the_erased_examples_wherever_they_sit(store, tmp_path):
    evidence = {
        "eval": {"win_examples": [{"id": "u1", "input": SECRET}, {"id": "o1", "input": "x"}]},
        "regression": [{"id": "u2"}],
    }
    cleaned, removed = without_examples(evidence, {"u1", "u2"})
    assert removed == 2
    assert cleaned == {"eval": {"win_examples": [{"id": "o1", "input": "x"}]}, "regression": []}


def file_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def test_the_rewritten_store_file_holds_no_deleted_bytes_and_the_same_schema(tmp_path):
    path = tmp_path / "flywheel.duckdb"
    connection = connect(path)
    create_task(connection, SPAM)
    seed_users(connection)
    connection.execute("CHECKPOINT")
    assert SECRET.encode() in file_bytes(path)  # the search below can see it
    schema = connection.execute(
        "SELECT sql FROM duckdb_tables() UNION ALL "
        "SELECT sql FROM duckdb_views() WHERE NOT internal ORDER BY 1"
    ).fetchall()
    erase(connection, tmp_path, Selector.from_metadata("user=4711"))
    connection.execute("CHECKPOINT")
    connection.execute("VACUUM")
    assert SECRET.encode() in file_bytes(path)  # why the rewrite is needed (DuckDB 2.0.0)

    compact(connection, path)

    assert SECRET.encode() not in file_bytes(path)
    assert sorted(p.name for p in tmp_path.glob("flywheel.duckdb*")) == ["flywheel.duckdb"]
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    again = connect(path)
    try:
        assert schema_version(again) == MIGRATIONS[-1][0]
        assert (
            again.execute(
                "SELECT sql FROM duckdb_tables() UNION ALL "
                "SELECT sql FROM duckdb_views() WHERE NOT internal ORDER BY 1"
            ).fetchall()
            == schema
        )
        assert count(again, "SELECT count(*) FROM ground_truth") == 3
        assert write_batch(again, [inference("u1", "4711", "again")]).erased == 1  # key kept
        with pytest.raises(duckdb.ConstraintException):  # primary keys survive the copy
            again.execute("INSERT INTO inferences SELECT * FROM inferences LIMIT 1")
    finally:
        again.close()


def test_the_review_queue_still_works_after_erasure(store, tmp_path):
    seed_users(store)
    write_batch(store, [inference("q1", "4711", SECRET), inference("q2", "1", "keep me")])
    erase(store, tmp_path, Selector.from_metadata("user=4711"))
    leased = lease_next(
        store, holder="h", reviewer="rita", task="spam", lease_s=60, low_confidence=-0.7
    )
    assert leased is not None and leased["inference_id"] == "q2"


def test_a_candidate_whose_cycle_ran_through_an_erasure_is_tainted_and_never_promoted(
    store, tmp_path
):
    """The cycle took its snapshot, the user's data was erased while it trained, then its
    candidate arrived with a gate verdict of promote: the store takes the candidate as
    tainted, rejects it and keeps the champion."""
    from services.control_plane.cycle_runner import record_outcome
    from training.cycle_records import start_cycle
    from training.promotion_gate import GateDecision

    seed_users(store)
    snapshot = build_snapshot(store, task=SPAM, snapshots_dir=tmp_path / "snapshots")
    cycle_id = start_cycle(store, task="spam", trigger="manual", lease_s=60)
    erase(store, tmp_path, Selector.from_metadata("user=4711"))

    candidate = write_adapter(tmp_path / "adapters", b"trained before the erasure")
    message = record_outcome(
        store,
        cycle_id=cycle_id,
        task="spam",
        snapshot_id=snapshot.snapshot_id,
        champion_id=None,
        result={
            "adapter_id": candidate,
            "adapter_path": str(tmp_path / "adapters" / candidate),
            "base_model": "smol",
            "metadata": {},
        },
        decision=GateDecision("promote", ["the candidate is better"]),
    )

    assert message is None and champion(store, "spam") is None
    flags = {a["adapter_id"]: a["tainted"] for a in list_adapters(store, "spam")}
    assert flags == {candidate: True}
    verdict, decision = store.execute(
        "SELECT verdict, decision FROM cycles WHERE cycle_id = ?", [cycle_id]
    ).fetchone()
    assert verdict == "reject" and "tainted" in json.loads(decision)["reasons"][0]
