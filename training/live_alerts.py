"""Drift alerts in the store: raised by the live guard, shown by status and the console."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import duckdb

from training import registry


def raise_alert(
    connection: duckdb.DuckDBPyConnection,
    *,
    task: str,
    adapter_id: str | None,
    baseline: str,
    action: str,
    evidence: dict[str, Any],
) -> None:
    """Record a drift alert and audit it (actor live-guard), in one transaction."""
    with registry.transaction(connection):
        connection.execute(
            "INSERT INTO live_alerts (raised_at, task, adapter_id, baseline, action, evidence) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [
                datetime.now(UTC).replace(tzinfo=None),
                task,
                adapter_id,
                baseline,
                action,
                json.dumps(evidence, default=str),
            ],
        )
        details = {"adapter_id": adapter_id, "baseline": baseline, "policy": action, **evidence}
        registry.audit(
            connection, actor="live-guard", action="drift:alert", task=task, details=details
        )


def recent_alerts(connection: duckdb.DuckDBPyConnection, limit: int = 20) -> list[dict[str, Any]]:
    rows = connection.execute(
        "SELECT raised_at, task, adapter_id, baseline, action, evidence FROM live_alerts "
        "ORDER BY raised_at DESC LIMIT ?",
        [limit],
    ).fetchall()
    return [
        {
            "raised_at": r[0].isoformat() + "Z",
            "task": r[1],
            "adapter_id": r[2],
            "baseline": r[3],
            "action": r[4],
            "reason": json.loads(r[5]).get("reason"),
        }
        for r in rows
    ]
