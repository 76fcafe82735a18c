"""Champion alias history, rollback order, one-transaction promotions, and the one-cycle-per-
task rule."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import duckdb
import pytest

from feedback.store import connect
from services.control_plane.cycle_runner import CyclePaths, CycleRunner, record_outcome
from services.control_plane.store_worker import StoreWorker
from tests.registry_fixtures import corrupt, seed_registry, write_adapter
from training.cycle_records import get_cycle, recover_stale_cycles, start_cycle, update_cycle
from training.promotion_gate import GateDecision
from training.registry import (
    AdapterRefusedError,
    RegistryError,
    champion,
    champion_at,
    champion_history,
    get_adapter,
    promote,
    rollback_target,
)


@pytest.fixture
def db(tmp_path):
    connection = connect(tmp_path / "store.duckdb")
    yield connection
    connection.close()


@pytest.fixture
def adapters(db, tmp_path) -> tuple[str, str]:
    return seed_registry(db, tmp_path)


def audit_actions(db: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    return db.execute("SELECT actor, action FROM audit_log ORDER BY logged_at").fetchall()


def regression_set(db: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    return db.execute("SELECT task, inference_id FROM regression_examples").fetchall()


def test_champion_history_answers_what_was_live_when(db, adapters):
    first, second = adapters
    assert champion(db, "spam") is None
    with pytest.raises(RegistryError):
        rollback_target(db, "spam")
    promote(db, task="spam", adapter_id=first, actor="gate", action="promote", reason="r")
    after_first = datetime.now(UTC)
    time.sleep(0.01)
    promote(db, task="spam", adapter_id=second, actor="ops", action="approve", reason="r")
    assert champion(db, "spam") == second
    assert champion_at(db, "spam", after_first) == first
    assert rollback_target(db, "spam") == first
    promote(db, task="spam", adapter_id=first, actor="ops", action="rollback", reason="bad")
    assert rollback_target(db, "spam") is None  # one more undoes the first promotion
    with pytest.raises(RegistryError, match="no adapter"):
        promote(db, task="spam", adapter_id="zzz", actor="x", action="promote", reason="")
    assert audit_actions(db) == [("gate", "promote"), ("ops", "approve"), ("ops", "rollback")]


def test_promoting_for_an_unknown_task_says_which_task_and_how_to_create_it(db, adapters):
    with pytest.raises(RegistryError, match="no task named nope; create it with flywheel task"):
        promote(db, task="nope", adapter_id=None, actor="ops", action="promote", reason="")
    assert audit_actions(db) == []


def test_a_corrupted_adapter_is_refused_and_the_champion_stays(db, adapters, tmp_path):
    first, second = adapters
    promote(db, task="spam", adapter_id=first, actor="gate", action="promote", reason="")
    corrupt(tmp_path / "adapters", second)
    with pytest.raises(AdapterRefusedError, match=r"corrupted.*the champion is unchanged"):
        promote(db, task="spam", adapter_id=second, actor="ops", action="promote", reason="")
    assert champion(db, "spam") == first
    assert [h["adapter_id"] for h in champion_history(db, "spam")] == [first]
    assert audit_actions(db)[-1] == ("ops", "promote:refused")


def test_a_promotion_remembers_the_mistakes_its_adapter_fixed(db, adapters):
    first, _ = adapters
    assert regression_set(db) == []
    promote(db, task="spam", adapter_id=first, actor="ops", action="promote", reason="")
    assert regression_set(db) == [("spam", "i1")]  # i1: the model said ham, a reviewer spam


def test_a_promotion_that_fails_midway_leaves_nothing_half_written(db, adapters, tmp_path):
    first, second = adapters
    db.close()
    store = StoreWorker(tmp_path / "store.duckdb")
    store.open()
    runner = CycleRunner(
        store=store,
        producer=None,
        paths=CyclePaths(None, tmp_path, tmp_path / "adapters", tmp_path, tmp_path),
        lease_s=60,
        timeout_s=60,
    )

    async def scenario() -> None:
        await runner.promote("spam", first, actor="ops", action="promote", reason="")
        # The last step (remembering fixed mistakes) now fails, after the alias has moved.
        await store.call(lambda c: c.execute("DROP TABLE regression_examples"))
        with pytest.raises(duckdb.CatalogException):
            await runner.promote("spam", second, actor="ops", action="promote", reason="")
        assert await store.call(champion, "spam") == first
        history = await store.call(champion_history, "spam")
        assert [(h["adapter_id"], h["until"]) for h in history] == [(first, None)]

    try:
        asyncio.run(scenario())
    finally:
        store.close()


def test_a_cycle_outcome_is_one_transaction(db, adapters, tmp_path):
    """Registration, verdict, gate audit and promotion: all of them, or none of them."""
    snapshot_id = get_adapter(db, adapters[0]).snapshot_id
    decision = GateDecision("promote", ["candidate beats champion"])

    def outcome(candidate: str) -> tuple[str, dict | None]:
        cycle_id = start_cycle(db, task="spam", trigger="manual", lease_s=60)
        message = record_outcome(
            db,
            cycle_id=cycle_id,
            task="spam",
            snapshot_id=snapshot_id,
            champion_id=champion(db, "spam"),
            result={
                "adapter_id": candidate,
                "adapter_path": str(tmp_path / "adapters" / candidate),
                "base_model": "smol",
                "metadata": {},
            },
            decision=decision,
        )
        return cycle_id, message

    good = write_adapter(tmp_path / "adapters", b"good candidate")
    good_cycle, message = outcome(good)
    assert message is not None and message["adapter_id"] == good == champion(db, "spam")
    assert get_cycle(db, good_cycle)["verdict"] == "promote"
    assert regression_set(db) == [("spam", "i1")]

    bad = write_adapter(tmp_path / "adapters", b"bad candidate")
    corrupt(tmp_path / "adapters", bad)
    with pytest.raises(AdapterRefusedError):
        outcome(bad)
    assert get_adapter(db, bad) is None  # not even registered
    bad_cycle = db.execute("SELECT cycle_id FROM cycles WHERE adapter_id IS NULL").fetchall()
    assert len(bad_cycle) == 1 and get_cycle(db, bad_cycle[0][0])["verdict"] is None
    assert champion(db, "spam") == good
    assert audit_actions(db) == [
        ("gate", "gate:promote"),
        ("gate", "promote"),
        ("gate", "promote:refused"),
    ]


def test_the_registry_names_its_columns_so_migrations_may_reorder_or_add_them(db, tmp_path):
    db.execute(
        """
        CREATE TABLE adapters_v2 (
            note VARCHAR, created_at TIMESTAMP NOT NULL, metadata VARCHAR NOT NULL,
            path VARCHAR NOT NULL, snapshot_id VARCHAR NOT NULL, parent_adapter VARCHAR,
            base_model VARCHAR NOT NULL, task VARCHAR NOT NULL, adapter_id VARCHAR PRIMARY KEY
        );
        DROP TABLE adapters;
        ALTER TABLE adapters_v2 RENAME TO adapters;
        ALTER TABLE champion_history ADD COLUMN note VARCHAR;
        ALTER TABLE audit_log ADD COLUMN note VARCHAR;
        ALTER TABLE tasks ADD COLUMN note VARCHAR;
        """
    )
    first, _ = seed_registry(db, tmp_path)
    record = get_adapter(db, first)
    assert record is not None
    assert (record.task, record.base_model, record.path) == (
        "spam",
        "smol",
        tmp_path / "adapters" / first,
    )
    assert record.metadata == {} and record.parent_adapter is None
    promote(db, task="spam", adapter_id=first, actor="ops", action="promote", reason="why")
    assert champion_history(db, "spam")[0]["reason"] == "why"
    assert audit_actions(db) == [("ops", "promote")]


def test_one_active_cycle_per_task_and_stale_leases_recover(db):
    first = start_cycle(db, task="spam", trigger="manual", lease_s=60)
    assert first is not None
    assert start_cycle(db, task="spam", trigger="schedule", lease_s=60) is None
    assert start_cycle(db, task="faq", trigger="schedule", lease_s=60) is not None
    update_cycle(db, first, lease_s=-1, state="training")  # its runner stopped renewing
    assert recover_stale_cycles(db) == [first]
    state, error = db.execute(
        "SELECT state, error FROM cycles WHERE cycle_id = ?", [first]
    ).fetchone()
    assert state == "failed" and "lease expired" in error
    assert start_cycle(db, task="spam", trigger="schedule", lease_s=60) is not None
