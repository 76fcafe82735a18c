"""The DuckDB ground-truth store: opening, locking and migrations.

DuckDB allows one read-write process per file, so only the control plane opens it for
writing; commands run while the service is down open it themselves.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from feedback.exceptions import StoreError, StoreLockedError
from feedback.migrations import MIGRATIONS
from feedback.private_files import private_dir, private_file

log = logging.getLogger(__name__)


def connect(path: Path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the store, applying pending migrations unless ``read_only``. The store holds
    every event and the token hashes: its directory is made 0700 and the file 0600."""
    private_dir(path.parent)
    if read_only and not path.exists():
        raise StoreError(f"no store at {path}: start the service once (flywheel up) to create it")
    try:
        connection = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as error:
        if "lock" in str(error).lower():
            raise StoreLockedError(
                f"{path} is in use by another process ({_lock_holder(error)}). Only one "
                "Flywheel control plane may run per FLYWHEEL_HOME: stop the other one, or "
                "point FLYWHEEL_HOME elsewhere."
            ) from error
        raise StoreError(f"cannot open {path}: {error}") from error
    if not read_only:
        private_file(path)  # DuckDB creates it under the process umask
        migrate(connection)
    return connection


def migrate(connection: duckdb.DuckDBPyConnection) -> list[int]:
    """Apply every migration not yet applied, each in its own transaction."""
    connection.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        "version INTEGER PRIMARY KEY, description VARCHAR, applied_at TIMESTAMP)"
    )
    applied = {
        row[0] for row in connection.execute("SELECT version FROM schema_migrations").fetchall()
    }
    done = []
    for version, description, sql in MIGRATIONS:
        if version in applied:
            continue
        connection.execute("BEGIN TRANSACTION")
        try:
            connection.execute(sql)
            connection.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                [version, description, datetime.now(UTC).replace(tzinfo=None)],
            )
            connection.execute("COMMIT")
        except Exception:
            connection.execute("ROLLBACK")
            raise
        log.info("applied store migration %d: %s", version, description)
        done.append(version)
    return done


def schema_version(connection: duckdb.DuckDBPyConnection) -> int:
    row = connection.execute("SELECT max(version) FROM schema_migrations").fetchone()
    return int(row[0] or 0) if row else 0


def _lock_holder(error: duckdb.IOException) -> str:
    text = str(error)
    marker = "(PID "
    if marker in text:
        return "PID " + text.split(marker, 1)[1].split(")", 1)[0]
    return "lock held"
