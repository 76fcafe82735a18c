"""API tokens: created once, shown once, stored only as a SHA-256 hash, carrying one role."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, get_args

import duckdb

Role = Literal["app", "reviewer", "operator", "admin"]
ROLES: tuple[str, ...] = get_args(Role)
TOKEN_PREFIX = "fw_"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a token belongs to: its role and the name it was created with (for the audit)."""

    role: str
    name: str


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


def load_principals(connection: duckdb.DuckDBPyConnection) -> dict[str, Principal]:
    """Hash → principal of every live token, for the API's in-memory check."""
    rows = connection.execute(
        "SELECT token_hash, role, name FROM api_tokens WHERE revoked_at IS NULL"
    ).fetchall()
    return {h: Principal(role, name) for h, role, name in rows}


def principal_of(token: str, principals: dict[str, Principal]) -> Principal | None:
    """The token's principal, or None; each comparison runs in constant time."""
    digest = token_hash(token)
    found = None
    for known, principal in principals.items():
        if hmac.compare_digest(known, digest):
            found = principal
    return found
