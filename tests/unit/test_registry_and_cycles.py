"""Champion alias history, rollback order, and the one-cycle-per-task rule."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from feedback.store import connect
from training.cycle_records import recover_stale_cycles, start_cycle, update_cycle
from training.registry import (
    RegistryError,
    champion,
    champion_at,
    register_adapter,
    rollback_target,
    set_champion,
)


@pytest.fixture
def db(tmp_path):
    connection = connect(tmp_path / "store.duckdb")
    for adapter_id in ("aaa", "bbb"):
        register_adapter(
            connection,
            adapter_id=adapter_id,
            task="spam",
            base_model="smol",
            parent_adapter=None,
            snapshot_id="s1",
            path=Path("/x"),
            metadata={},
        )
    yield connection
    connection.close()


def test_champion_history_answers_what_was_live_when(db):
    assert champion(db, "spam") is None
    with pytest.raises(RegistryError):
        rollback_target(db, "spam")
    set_champion(db, task="spam", adapter_id="aaa", actor="gate", action="promote", reason="r")
    after_a = datetime.now(UTC)
    time.sleep(0.01)
    set_champion(db, task="spam", adapter_id="bbb", actor="ops", action="approve", reason="r")
    assert champion(db, "spam") == "bbb"
    assert champion_at(db, "spam", after_a) == "aaa"
    assert rollback_target(db, "spam") == "aaa"
    set_champion(db, task="spam", adapter_id="aaa", actor="ops", action="rollback", reason="bad")
    assert rollback_target(db, "spam") is None  # one more undoes the first promotion
    with pytest.raises(RegistryError, match="no adapter"):
        set_champion(db, task="spam", adapter_id="zzz", actor="x", action="promote", reason="")
    audit = db.execute("SELECT actor, action FROM audit_log ORDER BY logged_at").fetchall()
    assert audit == [("gate", "promote"), ("ops", "approve"), ("ops", "rollback")]


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
