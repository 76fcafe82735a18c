from __future__ import annotations

import pytest

from feedback.store import connect
from services.control_plane.tokens import Principal, create_token, load_principals, principal_of


def test_tokens_are_stored_as_hashes_and_carry_their_role(tmp_path):
    db = connect(tmp_path / "s.duckdb")
    token = create_token(db, role="reviewer", name="ana")
    stored = db.execute("SELECT token_hash, role FROM api_tokens").fetchall()
    assert token not in str(stored) and stored[0][1] == "reviewer"
    principals = load_principals(db)
    assert principal_of(token, principals) == Principal("reviewer", "ana")
    assert principal_of(token + "x", principals) is None
    with pytest.raises(ValueError, match="unknown role"):
        create_token(db, role="root", name="x")
    db.close()
