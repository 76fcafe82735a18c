"""The adapter registry: adapters with lineage, and each task's champion alias with history.

The champion is a row in ``champion_history`` with ``until IS NULL``; changing it closes that
row and opens another in one transaction, so "what was live at time T" is one query. Adapter
ids are content hashes of their weights, so an id always means the same weights.

``promote`` is the one way to change a champion (promotion, approval and rollback alike): the
control plane and the CLI with the control plane down both call it, so both check the files,
audit the change and grow the regression set the same way.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from feedback.snapshots import remember_fixed_mistakes
from training.adapter_files import verify_adapter
from training.task_records import get_task

log = logging.getLogger(__name__)

FIXING_ACTIONS = ("promote", "approve")
"""Champion changes that put a newly trained adapter live, so its fixed mistakes must stay
fixed; a rollback puts back an adapter whose fixes were remembered when it first went live."""


class RegistryError(Exception):
    """A registry change that cannot be made; the message says why."""


class AdapterRefusedError(RegistryError):
    """The adapter's files no longer match its content hash: it must not go live."""


@dataclass(frozen=True, slots=True)
class AdapterRecord:
    adapter_id: str
    task: str
    base_model: str
    parent_adapter: str | None
    snapshot_id: str
    path: Path
    metadata: dict[str, Any]
    created_at: datetime


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def register_adapter(
    connection: duckdb.DuckDBPyConnection,
    *,
    adapter_id: str,
    task: str,
    base_model: str,
    parent_adapter: str | None,
    snapshot_id: str,
    path: Path,
    metadata: dict[str, Any],
) -> None:
    """Record a trained adapter; registering the same content again is a no-op."""
    connection.execute(
        """
        INSERT OR IGNORE INTO adapters (adapter_id, task, base_model, parent_adapter,
                                        snapshot_id, path, metadata, created_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?)
        """,
        [
            adapter_id,
            task,
            base_model,
            parent_adapter,
            snapshot_id,
            str(path),
            json.dumps(metadata),
            _now(),
        ],
    ).fetchall()


def get_adapter(connection: duckdb.DuckDBPyConnection, adapter_id: str) -> AdapterRecord | None:
    row = connection.execute(
        """
        SELECT adapter_id, task, base_model, parent_adapter, snapshot_id, path, metadata,
               created_at
        FROM adapters WHERE adapter_id = ?
        """,
        [adapter_id],
    ).fetchone()
    if row is None:
        return None
    adapter_id, task, base_model, parent, snapshot_id, path, metadata, created_at = row
    return AdapterRecord(
        adapter_id=adapter_id,
        task=task,
        base_model=base_model,
        parent_adapter=parent,
        snapshot_id=snapshot_id,
        path=Path(path),
        metadata=json.loads(metadata),
        created_at=created_at,
    )


def list_adapters(
    connection: duckdb.DuckDBPyConnection, task: str | None = None
) -> list[dict[str, Any]]:
    rows = connection.execute(
        """
        SELECT a.adapter_id, a.task, a.parent_adapter, a.snapshot_id, a.created_at, a.metadata,
               (c.adapter_id IS NOT NULL) AS is_champion, (t.adapter_id IS NOT NULL) AS tainted
        FROM adapters a
        LEFT JOIN champion_history c ON c.adapter_id = a.adapter_id AND c.until IS NULL
        LEFT JOIN adapter_taints t ON t.adapter_id = a.adapter_id
        WHERE ? IS NULL OR a.task = ?
        ORDER BY a.created_at
        """,
        [task, task],
    ).fetchall()
    return [
        {
            "adapter_id": r[0],
            "task": r[1],
            "parent_adapter": r[2],
            "snapshot_id": r[3],
            "created_at": r[4].isoformat(),
            "metrics": json.loads(r[5]).get("eval", {}),
            "champion": bool(r[6]),
            "tainted": bool(r[7]),  # learned from erased data (training.taint)
        }
        for r in rows
    ]


def champion(connection: duckdb.DuckDBPyConnection, task: str) -> str | None:
    """The task's live adapter id; None means the base model serves it."""
    row = connection.execute(
        "SELECT adapter_id FROM champion_history WHERE task = ? AND until IS NULL", [task]
    ).fetchone()
    return row[0] if row else None


def champions(connection: duckdb.DuckDBPyConnection) -> dict[str, dict[str, Any]]:
    """Every task's live champion and since when (tasks never promoted are absent)."""
    rows = connection.execute(
        "SELECT task, adapter_id, since FROM champion_history WHERE until IS NULL"
    ).fetchall()
    return {r[0]: {"adapter_id": r[1], "since": r[2].isoformat() + "Z"} for r in rows}


def champion_at(connection: duckdb.DuckDBPyConnection, task: str, when: datetime) -> str | None:
    """Which adapter was live at ``when`` (None: the base model)."""
    when = when.astimezone(UTC).replace(tzinfo=None) if when.tzinfo else when
    row = connection.execute(
        "SELECT adapter_id FROM champion_history WHERE task = ? AND since <= ? "
        "AND (until IS NULL OR until > ?) ORDER BY since DESC LIMIT 1",
        [task, when, when],
    ).fetchone()
    return row[0] if row else None


def champion_history(connection: duckdb.DuckDBPyConnection, task: str) -> list[dict[str, Any]]:
    rows = connection.execute(
        "SELECT adapter_id, since, until, actor, action, reason FROM champion_history "
        "WHERE task = ? ORDER BY since",
        [task],
    ).fetchall()
    return [
        {
            "adapter_id": r[0],
            "since": r[1].isoformat(),
            "until": r[2] and r[2].isoformat(),
            "actor": r[3],
            "action": r[4],
            "reason": r[5],
        }
        for r in rows
    ]


@contextmanager
def transaction(connection: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """All of the block's writes, or none of them."""
    connection.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def promote(
    connection: duckdb.DuckDBPyConnection,
    *,
    task: str,
    adapter_id: str | None,
    actor: str,
    action: str,
    reason: str,
) -> dict[str, Any]:
    """Make ``adapter_id`` (None: the base model) the task's champion, in one transaction:
    check its files against its content hash, move the alias, audit, and for a promotion or
    approval add the mistakes it fixed to the regression set. Returns the message to publish
    to the inference servers. Raises RegistryError (unknown task or adapter) or
    AdapterRefusedError (corrupted files, audited as ``<action>:refused``), changing nothing."""
    try:
        with transaction(connection):
            return change_champion(
                connection,
                task=task,
                adapter_id=adapter_id,
                actor=actor,
                action=action,
                reason=reason,
            )
    except AdapterRefusedError as refusal:
        refused(connection, refusal, task=task, adapter_id=adapter_id, actor=actor, action=action)
        raise


def change_champion(
    connection: duckdb.DuckDBPyConnection,
    *,
    task: str,
    adapter_id: str | None,
    actor: str,
    action: str,
    reason: str,
) -> dict[str, Any]:
    """The steps of ``promote`` for a caller that already holds a transaction (a cycle that
    records its candidate and promotes it at once); on an error the caller rolls back."""
    if get_task(connection, task) is None:
        raise RegistryError(f"no task named {task}; create it with flywheel task create")
    record = None if adapter_id is None else _verified(connection, task, adapter_id)
    previous = champion(connection, task)
    now = _now()
    connection.execute(
        "UPDATE champion_history SET until = ? WHERE task = ? AND until IS NULL", [now, task]
    )
    connection.execute(
        "INSERT INTO champion_history (task, adapter_id, since, until, actor, action, reason) "
        "VALUES (?, ?, ?, NULL, ?, ?, ?)",
        [task, adapter_id, now, actor, action, reason],
    )
    fixed = 0
    if record is not None and action in FIXING_ACTIONS:
        fixed = remember_fixed_mistakes(connection, task=task, snapshot_id=record.snapshot_id)
    details = {
        "adapter_id": adapter_id,
        "previous": previous,
        "reason": reason,
        "fixed_mistakes": fixed,
    }
    audit(connection, actor=actor, action=action, task=task, details=details)
    return {
        "task": task,
        "adapter_id": adapter_id,
        "previous_adapter_id": previous,
        "action": action,
        "actor": actor,
        "at": now.isoformat() + "Z",
    }


def _verified(connection: duckdb.DuckDBPyConnection, task: str, adapter_id: str) -> AdapterRecord:
    """The task's adapter once its files are checked against its content hash."""
    record = get_adapter(connection, adapter_id)
    if record is None or record.task != task:
        raise RegistryError(f"no adapter {adapter_id} for task {task}")
    try:
        verify_adapter(record.path)
    except (OSError, ValueError) as error:
        raise AdapterRefusedError(
            f"{error}; the champion is unchanged. Run a new cycle to train a fresh candidate."
        ) from error
    return record


def refused(
    connection: duckdb.DuckDBPyConnection,
    refusal: AdapterRefusedError,
    *,
    task: str,
    adapter_id: str | None,
    actor: str,
    action: str,
) -> None:
    """Tell operators that an adapter was refused: an ``<action>:refused`` audit entry and an
    error in the log. Written after the rollback, so the refusal itself is remembered."""
    log.error("refused to %s %s for %s: %s", action, adapter_id, task, refusal)
    details = {"adapter_id": adapter_id, "reason": str(refusal.__cause__ or refusal)}
    audit(connection, actor=actor, action=f"{action}:refused", task=task, details=details)


def rollback_target(connection: duckdb.DuckDBPyConnection, task: str) -> str | None:
    """The champion that the current one replaced (None: the base model). Rollbacks undo
    promotions in order, so rolling back twice goes two promotions back, not in a circle."""
    rows = connection.execute(
        "SELECT adapter_id, action FROM champion_history WHERE task = ? ORDER BY since", [task]
    ).fetchall()
    if not rows or (len(rows) == 1 and rows[0][0] is None):
        raise RegistryError(f"task {task} has no promoted adapter; nothing to roll back")
    stack: list[str | None] = [None]
    for adapter_id, action in rows:
        if action == "rollback":
            stack.pop()
        else:
            stack.append(adapter_id)
    if len(stack) < 2:
        raise RegistryError(f"task {task} is already on the base model; nothing to roll back")
    return stack[-2]


def audit(
    connection: duckdb.DuckDBPyConnection,
    *,
    actor: str,
    action: str,
    task: str | None,
    details: dict[str, Any],
) -> None:
    """One entry of the audit log: who did what to which task, and the details."""
    connection.execute(
        "INSERT INTO audit_log (logged_at, actor, action, task, details) VALUES (?, ?, ?, ?, ?)",
        [_now(), actor, action, task, json.dumps(details, default=str)],
    )
