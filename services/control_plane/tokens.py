"""API tokens: created once, shown once, stored only as a SHA-256 hash, carrying one role."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime
from typing import Literal, get_args

import duckdb

Role = Literal["app", "reviewer", "operator", "admin"]
ROLES: tuple[str, ...] = get_args(Role)
TOKEN_PREFIX = "fw_"


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(connection: duckdb.DuckDBPyConnection, *, role: str, name: str) -> str:
    """Store a new token's hash with its role; returns the token, which is never stored."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    token = new_token()
    connection.execute(
        "INSERT INTO api_tokens VALUES (?, ?, ?, ?, NULL)",
        [token_hash(token), role, name, datetime.now(UTC).replace(tzinfo=None)],
    )
    return token


def load_token_roles(connection: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Hash → role of every live token, for the API's in-memory check."""
    rows = connection.execute(
        "SELECT token_hash, role FROM api_tokens WHERE revoked_at IS NULL"
    ).fetchall()
    return {h: r for h, r in rows}


def role_of(token: str, roles_by_hash: dict[str, str]) -> str | None:
    """The token's role, or None; the final comparison runs in constant time."""
    digest = token_hash(token)
    for known, role in roles_by_hash.items():
        if hmac.compare_digest(known, digest):
            return role
    return None
