"""A consistent copy of the whole store into a new DuckDB file, from the connection that owns it.

While the control plane runs, only its store thread may touch the DuckDB file, so the copy
runs there: ``ATTACH`` a new file and ``COPY FROM DATABASE`` into it. The store thread does
one thing at a time, so the copy sees every write committed before it and none after it;
ingest waits for the copy (Kafka holds the events meanwhile) and then carries on. With the
control plane stopped, a read-only connection does the same.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from feedback.exceptions import StoreError

COUNTED_TABLES = (
    "inferences",
    "feedback",
    "corrections",
    "rejected_events",
    "adapters",
    "snapshots",
)
"""Tables whose row counts a backup reports, so an operator can see what it holds."""

_ALIAS = "flywheel_copy"


def copy_store(connection: duckdb.DuckDBPyConnection, target: Path) -> dict[str, int]:
    """Copy every table, view and row of the connection's database into ``target`` (a new
    file) and return the row counts of ``COUNTED_TABLES`` in the copy."""
    if target.exists():
        raise StoreError(f"{target} exists already; a store copy goes into a new file")
    row = connection.execute("SELECT current_database()").fetchone()
    assert row is not None
    source = _identifier(row[0])
    connection.execute(f"ATTACH {_literal(str(target))} AS {_ALIAS} (READ_WRITE)")
    try:
        connection.execute(f"COPY FROM DATABASE {source} TO {_ALIAS}")
        counts = {table: _count(connection, f"{_ALIAS}.main.{table}") for table in COUNTED_TABLES}
        connection.execute(f"CHECKPOINT {_ALIAS}")  # the copy is one file, no WAL beside it
    finally:
        connection.execute(f"DETACH {_ALIAS}")
    return counts


def _count(connection: duckdb.DuckDBPyConnection, table: str) -> int:
    row = connection.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(row[0]) if row else 0


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
