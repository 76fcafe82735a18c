"""Canaries in the registry: a candidate serving a fraction of its task's live traffic.

A candidate that passes the gate (or is approved) under a ``canary`` gate policy becomes the
task's canary instead of its champion. Ending it is one transaction: ``promote`` makes it
the champion through ``registry.change_champion`` (files checked, fixed mistakes
remembered); ``rollback`` leaves the champion alone. Each start and end is audited with its
evidence and returns the message the inference servers follow on ``flywheel.promotions``:
the champion, plus ``canary`` (its adapter and fraction, or null once ended).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal

import duckdb

from schemas.tasks import CanaryPolicy
from training import registry
from training.task_records import get_task

CanaryOutcome = Literal["promote", "rollback"]


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def active_canaries(connection: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Every running canary, oldest first."""
    rows = connection.execute(
        "SELECT task, adapter_id, champion_id, policy, started_at FROM canaries "
        "WHERE ended_at IS NULL ORDER BY started_at"
    ).fetchall()
    return [
        {
            "task": r[0],
            "adapter_id": r[1],
            "champion_id": r[2],
            "policy": json.loads(r[3]),
            "started_at": r[4].isoformat() + "Z",
        }
        for r in rows
    ]


def active_canary(connection: duckdb.DuckDBPyConnection, task: str) -> dict[str, Any] | None:
    return next((c for c in active_canaries(connection) if c["task"] == task), None)


def canary_history(connection: duckdb.DuckDBPyConnection, task: str) -> list[dict[str, Any]]:
    rows = connection.execute(
        "SELECT adapter_id, started_at, ended_at, outcome, actor, evidence FROM canaries "
        "WHERE task = ? ORDER BY started_at",
        [task],
    ).fetchall()
    return [
        {
            "adapter_id": r[0],
            "started_at": r[1].isoformat() + "Z",
            "ended_at": r[2] and r[2].isoformat() + "Z",
            "outcome": r[3],
            "actor": r[4],
            "evidence": json.loads(r[5]) if r[5] else None,
        }
        for r in rows
    ]


def canary_policy(connection: duckdb.DuckDBPyConnection, task: str) -> CanaryPolicy | None:
    """The task's canary policy; None: a passing candidate is promoted at once."""
    definition = get_task(connection, task)
    return definition.gate.canary if definition is not None else None


def start_canary(
    connection: duckdb.DuckDBPyConnection,
    *,
    task: str,
    adapter_id: str,
    policy: CanaryPolicy,
    actor: str,
    reason: str,
) -> dict[str, Any]:
    """Make ``adapter_id`` the task's canary (a running one is ended as superseded). The
    caller holds the transaction. Raises RegistryError or AdapterRefusedError."""
    registry._verified(connection, task, adapter_id)  # the same file check as a promotion
    now = _now()
    connection.execute(
        "UPDATE canaries SET ended_at = ?, outcome = 'superseded', actor = ? "
        "WHERE task = ? AND ended_at IS NULL",
        [now, actor, task],
    )
    champion = registry.champion(connection, task)
    connection.execute(
        "INSERT INTO canaries (task, adapter_id, champion_id, policy, started_at) "
        "VALUES (?, ?, ?, ?, ?)",
        [task, adapter_id, champion, policy.model_dump_json(), now],
    )
    details = {"adapter_id": adapter_id, "champion": champion, "policy": policy.model_dump()}
    registry.audit(
        connection,
        actor=actor,
        action="canary:start",
        task=task,
        details={**details, "reason": reason},
    )
    return _message(
        task,
        champion,
        {"adapter_id": adapter_id, "fraction": policy.fraction},
        action="canary:start",
        actor=actor,
        at=now,
    )


def end_canary(
    connection: duckdb.DuckDBPyConnection,
    *,
    task: str,
    outcome: CanaryOutcome,
    actor: str,
    reason: str,
    evidence: dict[str, Any],
) -> dict[str, Any]:
    """Promote or roll back the task's running canary, in one transaction, audited with the
    evidence. Raises RegistryError when no canary runs (or AdapterRefusedError)."""
    with registry.transaction(connection):
        canary = active_canary(connection, task)
        if canary is None:
            raise registry.RegistryError(f"task {task} has no running canary")
        now = _now()
        connection.execute(
            "UPDATE canaries SET ended_at = ?, outcome = ?, actor = ?, evidence = ? "
            "WHERE task = ? AND ended_at IS NULL",
            [now, outcome, actor, json.dumps(evidence, default=str), task],
        )
        details = {"adapter_id": canary["adapter_id"], "reason": reason, "evidence": evidence}
        registry.audit(
            connection, actor=actor, action=f"canary:{outcome}", task=task, details=details
        )
        champion = registry.champion(connection, task)
        if outcome == "promote":
            registry.change_champion(
                connection,
                task=task,
                adapter_id=canary["adapter_id"],
                actor=actor,
                action="promote",
                reason=f"canary promoted: {reason}",
            )
            champion = canary["adapter_id"]
        return _message(
            task,
            champion,
            None,
            action=f"canary:{outcome}",
            actor=actor,
            at=now,
            previous=canary["champion_id"] if outcome == "promote" else champion,
        )


def _message(
    task: str,
    champion: str | None,
    canary: dict[str, Any] | None,
    *,
    action: str,
    actor: str,
    at: datetime,
    previous: str | None = None,
) -> dict[str, Any]:
    """A promotions message: the champion as today, plus the canary (null: none)."""
    return {
        "task": task,
        "adapter_id": champion,
        "previous_adapter_id": previous if previous is not None else champion,
        "canary": canary,
        "action": action,
        "actor": actor,
        "at": at.isoformat() + "Z",
    }
