"""Cycle bookkeeping in the store: at most one cycle per task, leases, states, progress.

A cycle holds a lease that its runner renews; a cycle whose lease ran out (its process died)
is marked failed and frees the task, so a crash can never wedge a task forever.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb

ACTIVE_STATES = ("snapshot", "training", "evaluating")
STATES = (*ACTIVE_STATES, "decided", "failed")


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def start_cycle(
    connection: duckdb.DuckDBPyConnection, *, task: str, trigger: str, lease_s: float
) -> str | None:
    """Open a cycle for ``task`` unless one is active; returns its id, or None."""
    now = _now()
    connection.execute("BEGIN TRANSACTION")
    try:
        active = connection.execute(
            f"SELECT cycle_id FROM cycles WHERE task = ? AND state IN {ACTIVE_STATES} "
            "AND lease_expires_at > ?",
            [task, now],
        ).fetchone()
        if active:
            connection.execute("ROLLBACK")
            return None
        cycle_id = f"cyc-{now:%Y%m%d%H%M%S}-{uuid.uuid4().hex[:6]}"
        connection.execute(
            "INSERT INTO cycles (cycle_id, task, state, trigger, started_at, updated_at, "
            "lease_expires_at) VALUES (?, ?, 'snapshot', ?, ?, ?, ?)",
            [cycle_id, task, trigger, now, now, now + timedelta(seconds=lease_s)],
        )
        connection.execute("COMMIT")
    except Exception:
        connection.execute("ROLLBACK")
        raise
    return cycle_id


def update_cycle(
    connection: duckdb.DuckDBPyConnection,
    cycle_id: str,
    *,
    lease_s: float | None = None,
    **fields: Any,
) -> None:
    """Set ``state``, ``snapshot_id``, ``adapter_id``, ``verdict``, ``decision``, ``progress``
    or ``error``, and renew the lease when ``lease_s`` is given."""
    allowed = {"state", "snapshot_id", "adapter_id", "verdict", "decision", "progress", "error"}
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"unknown cycle fields: {sorted(unknown)}")
    if "state" in fields and fields["state"] not in STATES:
        raise ValueError(f"unknown cycle state {fields['state']!r}")
    values = {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in fields.items()}
    values["updated_at"] = now = _now()
    if lease_s is not None:
        values["lease_expires_at"] = now + timedelta(seconds=lease_s)
    assignments = ", ".join(f"{name} = ?" for name in values)
    connection.execute(
        f"UPDATE cycles SET {assignments} WHERE cycle_id = ?", [*values.values(), cycle_id]
    )


def recover_stale_cycles(
    connection: duckdb.DuckDBPyConnection, *, all_active: bool = False
) -> list[str]:
    """Fail cycles whose lease ran out (or every active one, at control-plane start-up, when
    no runner can still be alive); returns their ids."""
    now = _now()
    condition = "" if all_active else "AND lease_expires_at <= ?"
    params: list[Any] = [] if all_active else [now]
    rows = connection.execute(
        f"SELECT cycle_id FROM cycles WHERE state IN {ACTIVE_STATES} {condition}", params
    ).fetchall()
    for (cycle_id,) in rows:
        update_cycle(
            connection,
            cycle_id,
            state="failed",
            error="its process stopped before it finished (lease expired); nothing was "
            "registered, and the next cycle starts afresh",
        )
    return [r[0] for r in rows]


def get_cycle(connection: duckdb.DuckDBPyConnection, cycle_id: str) -> dict[str, Any] | None:
    cursor = connection.execute("SELECT * FROM cycles WHERE cycle_id = ?", [cycle_id])
    row = cursor.fetchone()
    if row is None:
        return None
    return _as_dict([d[0] for d in cursor.description], row)


def list_cycles(
    connection: duckdb.DuckDBPyConnection, task: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    cursor = connection.execute(
        "SELECT * FROM cycles WHERE ? IS NULL OR task = ? ORDER BY started_at DESC LIMIT ?",
        [task, task, limit],
    )
    names = [d[0] for d in cursor.description]
    return [_as_dict(names, row) for row in cursor.fetchall()]


def decided_cycles(connection: duckdb.DuckDBPyConnection, task: str) -> list[dict[str, Any]]:
    """Every cycle of ``task`` that reached a verdict, oldest first: the history the recipe
    search reads (its trigger rule and the configuration it tuned)."""
    cursor = connection.execute(
        "SELECT * FROM cycles WHERE task = ? AND verdict IS NOT NULL ORDER BY started_at",
        [task],
    )
    names = [d[0] for d in cursor.description]
    return [_as_dict(names, row) for row in cursor.fetchall()]


def _as_dict(names: list[str], row: tuple) -> dict[str, Any]:
    record = dict(zip(names, row, strict=True))
    for key in ("decision", "progress"):
        if record.get(key):
            record[key] = json.loads(record[key])
    for key, value in record.items():
        if isinstance(value, datetime):
            record[key] = value.isoformat()
    return record
