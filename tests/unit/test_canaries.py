"""Canaries in the registry and in the inference server's book."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from feedback.store import connect
from schemas.tasks import CanaryPolicy
from services.inference_server.champions import ChampionBook
from tests.registry_fixtures import corrupt, seed_registry
from training.canaries import active_canary, canary_history, end_canary, start_canary
from training.registry import AdapterRefusedError, RegistryError, champion, transaction

POLICY = CanaryPolicy(fraction=0.25, min_events=10, max_duration_s=60)


@pytest.fixture
def db(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    return connect(tmp_path / "store.duckdb")


def _start(db: duckdb.DuckDBPyConnection, adapter_id: str) -> dict:
    with transaction(db):
        return start_canary(
            db, task="spam", adapter_id=adapter_id, policy=POLICY, actor="gate", reason="passed"
        )


def _actions(db: duckdb.DuckDBPyConnection) -> list[str]:
    return [r[0] for r in db.execute("SELECT action FROM audit_log ORDER BY logged_at").fetchall()]


def test_a_canary_starts_beside_the_champion_and_promotes_into_it(db, tmp_path) -> None:
    first, _ = seed_registry(db, tmp_path)
    message = _start(db, first)
    assert message["canary"] == {"adapter_id": first, "fraction": 0.25}
    assert message["adapter_id"] is None and champion(db, "spam") is None
    assert active_canary(db, "spam")["policy"]["min_events"] == 10

    ended = end_canary(
        db, task="spam", outcome="promote", actor="live-guard", reason="better", evidence={"n": 3}
    )
    assert ended["canary"] is None and ended["adapter_id"] == first
    assert champion(db, "spam") == first and active_canary(db, "spam") is None
    assert canary_history(db, "spam")[0]["evidence"] == {"n": 3}
    assert _actions(db) == ["canary:start", "canary:promote", "promote"]


def test_a_rolled_back_canary_leaves_the_champion_and_cannot_end_twice(db, tmp_path) -> None:
    first, second = seed_registry(db, tmp_path)
    _start(db, first)
    _start(db, second)  # supersedes the first
    assert [h["outcome"] for h in canary_history(db, "spam")] == ["superseded", None]
    ended = end_canary(
        db, task="spam", outcome="rollback", actor="ana", reason="worse", evidence={}
    )
    assert ended["canary"] is None and ended["adapter_id"] is None
    with pytest.raises(RegistryError, match="no running canary"):
        end_canary(db, task="spam", outcome="rollback", actor="ana", reason="", evidence={})


def test_a_corrupted_candidate_never_becomes_a_canary(db, tmp_path) -> None:
    first, _ = seed_registry(db, tmp_path)
    corrupt(tmp_path / "adapters", first)
    with pytest.raises(AdapterRefusedError):
        _start(db, first)
    assert active_canary(db, "spam") is None


def test_the_book_routes_a_stable_fraction_of_callers_to_the_canary() -> None:
    book = ChampionBook()
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    book.apply("t", "champ", t0)
    book.apply("t", "champ", t0 + timedelta(seconds=1), {"adapter_id": "cand", "fraction": 0.2})
    served = {f"u{i}": book.route("t", f"u{i}") for i in range(2000)}
    share = Counter(served.values())["cand"] / len(served)
    assert 0.17 < share < 0.23
    assert all(book.route("t", user) == version for user, version in list(served.items())[:200])
    assert book.adapters() == {"champ", "cand"}
    # a message from before canaries (no canary key) keeps it; an explicit null ends it
    book.apply("t", "champ", t0 + timedelta(seconds=2))
    assert book.canaries() == {"t": {"adapter_id": "cand", "fraction": 0.2}}
    book.apply("t", "champ", t0 + timedelta(seconds=3), None)
    assert {book.route("t", user) for user in served} == {"champ"}
