"""Rewrite the DuckDB file so deleted rows leave no bytes behind.

DuckDB does not wipe what it deletes: measured with the pinned 2.0.0, a deleted string is
still in the file after ``DELETE``, ``CHECKPOINT`` and ``VACUUM`` alike (the freed blocks keep
it until they are reused). ``COPY FROM DATABASE`` into a fresh file writes only live rows,
with the same tables, constraints and views; the fresh file then replaces the old one in one
rename. An erasure is rare and the store small next to that guarantee: about 0.1 s per 20k
rows here.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import duckdb

log = logging.getLogger(__name__)

_FRESH_ALIAS = "flywheel_compacted"


def compact(connection: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Copy the live contents of the open store at ``path`` into a fresh file, close
    ``connection`` and put the fresh file in the store's place. The caller opens it again.
    On an error the old file stays as it was (the rename is the last step)."""
    fresh = path.with_name(path.name + ".compacting")
    for leftover in (fresh, fresh.with_name(fresh.name + ".wal")):
        leftover.unlink(missing_ok=True)
    database = connection.execute("SELECT current_database()").fetchone()
    assert database is not None
    connection.execute("CHECKPOINT")
    connection.execute(f"ATTACH '{_quoted(fresh)}' AS {_FRESH_ALIAS}")
    try:
        connection.execute(f'COPY FROM DATABASE "{database[0]}" TO {_FRESH_ALIAS}')
    finally:
        connection.execute(f"DETACH {_FRESH_ALIAS}")
    connection.close()
    os.chmod(fresh, 0o600)  # the store is this user's only, like the file it replaces
    os.replace(fresh, path)
    path.with_name(path.name + ".wal").unlink(missing_ok=True)  # checkpointed: it is empty
    log.info("store rewritten into a fresh file (%d bytes)", path.stat().st_size)


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")
