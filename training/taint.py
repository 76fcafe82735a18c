"""Adapters that learned from erased data, and what each task's erasure policy does about it.

An adapter is tainted when its snapshot held an erased example (in train or eval) or when it
was warm-started from a tainted adapter: its weights start from what the parent learned.
A tainted champion is then handled by the task's ``erasure_policy``:

- ``retrain`` (default): the champion stays live until a retraining cycle, warm-started
  from the newest untainted ancestor (or the base model) on the ground truth that is left,
  passes the gate against that ancestor; the cycle is owed in ``pending_retrains`` and the
  scheduler starts it.
- ``rollback``: the newest untainted ancestor (or the base model) becomes champion at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb

from training.registry import AdapterRefusedError, champion, change_champion
from training.task_records import get_task


@dataclass(frozen=True, slots=True)
class PolicyOutcome:
    """What a task's erasure policy did to its tainted champion."""

    task: str
    policy: str
    champion: str
    action: str
    """rolled_back | retrain_owed"""
    message: dict[str, Any] | None = None
    """For a rollback: the promotion message to publish to the inference servers."""

    def as_dict(self) -> dict[str, Any]:
        new = self.message["adapter_id"] if self.message else None
        return {
            "task": self.task,
            "policy": self.policy,
            "tainted_champion": self.champion,
            "action": self.action,
            **({"new_champion": new} if self.message else {}),
        }


def taint_adapters(
    connection: duckdb.DuckDBPyConnection, snapshot_ids: list[str], *, erasure_id: str
) -> list[str]:
    """Mark every adapter trained on one of ``snapshot_ids``, and every descendant of one,
    tainted; returns the newly tainted ids, oldest first."""
    rows = connection.execute(
        """
        WITH RECURSIVE tainted(adapter_id) AS (
            SELECT adapter_id FROM adapters WHERE snapshot_id IN (SELECT unnest(?::VARCHAR[]))
            UNION
            SELECT a.adapter_id FROM adapters a JOIN tainted t ON a.parent_adapter = t.adapter_id
        )
        SELECT a.adapter_id FROM adapters a
        WHERE a.adapter_id IN (SELECT adapter_id FROM tainted)
          AND a.adapter_id NOT IN (SELECT adapter_id FROM adapter_taints)
        ORDER BY a.created_at, a.adapter_id
        """,
        [snapshot_ids],
    ).fetchall()
    ids = [row[0] for row in rows]
    now = datetime.now(UTC).replace(tzinfo=None)
    for adapter_id in ids:
        connection.execute(
            "INSERT INTO adapter_taints VALUES (?, ?, ?)", [adapter_id, now, erasure_id]
        )
    return ids


def remember_erased_snapshots(
    connection: duckdb.DuckDBPyConnection, snapshot_ids: list[str], *, erasure_id: str
) -> None:
    """Record that ``erasure_id`` cut examples from ``snapshot_ids``: a candidate trained on
    one of them and registered later (its cycle was running) is tainted on arrival."""
    now = datetime.now(UTC).replace(tzinfo=None)
    for snapshot_id in snapshot_ids:
        connection.execute(
            "INSERT OR IGNORE INTO erased_snapshots VALUES (?, ?, ?)",
            [snapshot_id, erasure_id, now],
        )


def taint_on_arrival(
    connection: duckdb.DuckDBPyConnection,
    adapter_id: str,
    *,
    snapshot_id: str,
    parent_adapter: str | None,
) -> str | None:
    """Taint a just-registered candidate whose snapshot an erasure cut, or whose parent was
    tainted, while its cycle ran; returns the erasure's id (None: the candidate is clean)."""
    row = connection.execute(
        "SELECT erasure_id FROM erased_snapshots WHERE snapshot_id = ? "
        "ORDER BY erased_at DESC LIMIT 1",
        [snapshot_id],
    ).fetchone()
    if row is None and parent_adapter is not None:
        row = connection.execute(
            "SELECT erasure_id FROM adapter_taints WHERE adapter_id = ?", [parent_adapter]
        ).fetchone()
    if row is None:
        return None
    connection.execute(
        "INSERT OR IGNORE INTO adapter_taints VALUES (?, ?, ?)",
        [adapter_id, datetime.now(UTC).replace(tzinfo=None), row[0]],
    )
    return str(row[0])


def is_tainted(connection: duckdb.DuckDBPyConnection, adapter_id: str | None) -> bool:
    if adapter_id is None:
        return False
    row = connection.execute(
        "SELECT 1 FROM adapter_taints WHERE adapter_id = ?", [adapter_id]
    ).fetchone()
    return row is not None


def untainted_ancestors(
    connection: duckdb.DuckDBPyConnection, adapter_id: str | None
) -> list[str | None]:
    """The untainted adapters up ``adapter_id``'s parent chain, nearest first, ending with
    None (the base model)."""
    found: list[str | None] = []
    current = adapter_id
    seen = set()
    while current is not None and current not in seen:
        seen.add(current)
        row = connection.execute(
            "SELECT parent_adapter FROM adapters WHERE adapter_id = ?", [current]
        ).fetchone()
        current = row[0] if row else None
        if current is not None and not is_tainted(connection, current):
            found.append(current)
    return [*found, None]


def training_parent(connection: duckdb.DuckDBPyConnection, task: str) -> str | None:
    """The adapter a new cycle warm-starts from and is gated against: the champion, or when
    the champion is tainted its newest untainted ancestor (None: the base model)."""
    live = champion(connection, task)
    if not is_tainted(connection, live):
        return live
    return untainted_ancestors(connection, live)[0]


def apply_policies(
    connection: duckdb.DuckDBPyConnection, *, erasure_id: str, actor: str
) -> list[PolicyOutcome]:
    """For every task whose champion is tainted, do what its erasure policy says. Call inside
    the erasure's transaction."""
    rows = connection.execute(
        "SELECT c.task, c.adapter_id FROM champion_history c "
        "JOIN adapter_taints t ON t.adapter_id = c.adapter_id WHERE c.until IS NULL "
        "ORDER BY c.task"
    ).fetchall()
    outcomes = []
    for task_name, tainted in rows:
        task = get_task(connection, task_name)
        policy = task.erasure_policy if task is not None else "retrain"
        if policy == "rollback":
            message = _roll_back(connection, task_name, tainted, actor=actor)
            outcomes.append(PolicyOutcome(task_name, policy, tainted, "rolled_back", message))
            continue
        connection.execute(
            "INSERT OR REPLACE INTO pending_retrains VALUES (?, ?, ?)",
            [task_name, datetime.now(UTC).replace(tzinfo=None), erasure_id],
        )
        outcomes.append(PolicyOutcome(task_name, policy, tainted, "retrain_owed"))
    return outcomes


def _roll_back(
    connection: duckdb.DuckDBPyConnection, task: str, tainted: str, *, actor: str
) -> dict[str, Any]:
    """Make the newest untainted ancestor whose files are intact the champion."""
    for target in untainted_ancestors(connection, tainted):
        try:
            return change_champion(
                connection,
                task=task,
                adapter_id=target,
                actor=actor,
                action="rollback",
                reason=f"erasure: champion {tainted} learned from erased data",
            )
        except AdapterRefusedError:
            continue  # corrupted files: try the next ancestor, down to the base model
    raise AssertionError("the base model is always a rollback target")


def pending_retrains(connection: duckdb.DuckDBPyConnection) -> list[str]:
    return [r[0] for r in connection.execute("SELECT task FROM pending_retrains").fetchall()]


def retrain_started(connection: duckdb.DuckDBPyConnection, task: str) -> None:
    connection.execute("DELETE FROM pending_retrains WHERE task = ?", [task])
