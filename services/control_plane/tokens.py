"""API tokens: created once, shown once, stored only as a SHA-256 hash, carrying one role."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Annotated, Literal, get_args

import duckdb
from pydantic import Field, StringConstraints

# server: an inference server's own token (FLYWHEEL_SERVER_TOKEN): reads tasks and champions
# and reports alerts; it cannot send events or call the inference server as an app.
Role = Literal["app", "reviewer", "operator", "admin", "server"]
ROLES: tuple[str, ...] = get_args(Role)
TOKEN_PREFIX = "fw_"


TOKEN_NAME_PATTERN = r"^[^\x00-\x1f\x7f]{1,100}$"
TokenName = Annotated[
    str,
    StringConstraints(pattern=TOKEN_NAME_PATTERN),
    Field(description="Who or what uses the token: one line, at most 100 characters, unique."),
]
"""Names appear in the audit log, log lines and correction events, so they are one line."""
TOKEN_ID_CHARS = 16  # hex digits of the hash: 64 bits tell an installation's tokens apart


class TokenNameTakenError(ValueError):
    """Another token already has this name; names identify actors, so they are unique."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a token belongs to: its role and its unique name (the actor in the audit log).

    ``token_id`` (the start of the token's hash, set by ``principal_of``) is what owns state
    such as review leases: it tells two tokens apart even where their names cannot."""

    role: str
    name: str
    token_id: str = ""


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def default_token_name(role: str) -> str:
    """A name for a token created without one: ``<role>-<6 hex digits>``, so two unnamed
    tokens never share a name (or, through it, an audit identity)."""
    return f"{role}-{secrets.token_hex(3)}"


def create_token(connection: duckdb.DuckDBPyConnection, *, role: str, name: str) -> str:
    """Store a new token's hash with its role and unique name; returns the token, which is
    never stored. Raises TokenNameTakenError when another token has ``name``."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    if not re.fullmatch(TOKEN_NAME_PATTERN, name):
        raise ValueError(f"token name {name!r}: use one line of 1 to 100 characters")
    token = new_token()
    try:
        connection.execute(
            "INSERT INTO api_tokens (token_hash, role, name, created_at) VALUES (?, ?, ?, ?)",
            [token_hash(token), role, name, datetime.now(UTC).replace(tzinfo=None)],
        )
    except duckdb.ConstraintException as error:
        raise TokenNameTakenError(
            f"a token named {name!r} exists already; choose another name (names say who did "
            "what in the audit log)"
        ) from error
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
    return found and replace(found, token_id=digest[:TOKEN_ID_CHARS])
