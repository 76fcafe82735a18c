from __future__ import annotations

import pytest

import feedback.store
from feedback.migrations import MIGRATIONS
from feedback.store import connect
from services.control_plane.tokens import (
    TokenNameTakenError,
    create_token,
    default_token_name,
    load_principals,
    principal_of,
    token_hash,
)


def test_tokens_are_stored_as_hashes_and_carry_their_role(tmp_path):
    db = connect(tmp_path / "s.duckdb")
    token = create_token(db, role="reviewer", name="ana")
    stored = db.execute("SELECT token_hash, role FROM api_tokens").fetchall()
    assert token not in str(stored) and stored[0][1] == "reviewer"
    principals = load_principals(db)
    found = principal_of(token, principals)
    assert (found.role, found.name) == ("reviewer", "ana")
    assert found.token_id == token_hash(token)[:16]  # what owns leases: the token, not its name
    assert principal_of(token + "x", principals) is None
    with pytest.raises(ValueError, match="unknown role"):
        create_token(db, role="root", name="x")
    db.close()


def test_token_names_are_unique_and_one_line(tmp_path):
    db = connect(tmp_path / "s.duckdb")
    create_token(db, role="reviewer", name="ana")
    with pytest.raises(TokenNameTakenError, match="'ana' exists already"):
        create_token(db, role="app", name="ana")
    with pytest.raises(ValueError, match="one line"):
        create_token(db, role="app", name="ana\nadmin did it")
    names = {default_token_name("reviewer") for _ in range(20)}
    assert len(names) == 20 and all(n.startswith("reviewer-") for n in names)
    db.close()


def test_migration_gives_duplicate_names_their_own(tmp_path, monkeypatch):
    """A store from before unique names, with two tokens called 'unnamed', upgrades: the
    oldest keeps the name, the other gets a suffix, and both tokens still work."""
    path = tmp_path / "s.duckdb"
    monkeypatch.setattr(feedback.store, "MIGRATIONS", MIGRATIONS[:3])
    db = connect(path)
    for n, digest in enumerate(("aaaa1111bbbb", "cccc2222dddd")):
        db.execute(
            "INSERT INTO api_tokens VALUES (?, 'reviewer', 'unnamed', ?, NULL)",
            [digest, f"2026-01-0{n + 1}"],
        )
    db.close()
    monkeypatch.setattr(feedback.store, "MIGRATIONS", MIGRATIONS)
    db = connect(path)
    assert {h: p.name for h, p in load_principals(db).items()} == {
        "aaaa1111bbbb": "unnamed",
        "cccc2222dddd": "unnamed-cccc2222",
    }
    with pytest.raises(TokenNameTakenError):
        create_token(db, role="app", name="unnamed")
    db.close()
