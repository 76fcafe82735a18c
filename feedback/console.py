"""What the operator console plots: ground-truth growth, quality per adapter version, drift
signals per adapter version over time, and the audit log. Read-only queries over the store.

Time series are bucketed by minute, hour or day, whichever gives a readable number of points
for the span of the data (a demo spans minutes, a deployment months).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import duckdb

BASE = "base"  # how the base model is named where an adapter id is expected


def bucket_for(first: datetime | None, last: datetime | None) -> str:
    if first is None or last is None:
        return "day"
    span = (last - first).total_seconds()
    return "minute" if span <= 3 * 3600 else "hour" if span <= 4 * 86400 else "day"


def ground_truth_growth(connection: duckdb.DuckDBPyConnection, task: str) -> dict[str, Any]:
    """Cumulative ground-truth examples over time, by source (correction, edit, accepted,
    import)."""
    cursor = connection.cursor()
    first, last = cursor.execute(
        "SELECT min(updated_at), max(updated_at) FROM ground_truth WHERE task = ?", [task]
    ).fetchone()
    bucket = bucket_for(first, last)
    rows = cursor.execute(
        f"SELECT date_trunc('{bucket}', updated_at) AS t, source, count(*) FROM ground_truth "
        "WHERE task = ? GROUP BY ALL ORDER BY t",
        [task],
    ).fetchall()
    totals: dict[str, int] = {}
    points = []
    for when, source, count in rows:
        totals[source] = totals.get(source, 0) + count
        points.append(
            {
                "t": when.isoformat(),
                "source": source,
                "count": count,
                "cumulative": sum(totals.values()),
            }
        )
    return {"bucket": bucket, "points": points, "total": sum(totals.values()), "by_source": totals}


def drift(connection: duckdb.DuckDBPyConnection, task: str) -> dict[str, Any]:
    """Per adapter version and time bucket: answers served, the share a reviewer or user
    corrected (to something else), and the share that got negative feedback."""
    cursor = connection.cursor()
    first, last = cursor.execute(
        "SELECT min(occurred_at), max(occurred_at) FROM inferences "
        "WHERE task = ? AND origin = 'production'",
        [task],
    ).fetchone()
    bucket = bucket_for(first, last)
    rows = cursor.execute(
        f"""
        WITH negative AS (
            SELECT DISTINCT inference_id FROM feedback
            WHERE signal = 'thumbs_down' OR (signal = 'rating' AND rating <= 2)
        )
        SELECT date_trunc('{bucket}', i.occurred_at) AS t, coalesce(i.adapter_id, '{BASE}'),
               count(*),
               count(*) FILTER (WHERE c.inference_id IS NOT NULL AND c.output <> i.output),
               count(*) FILTER (WHERE n.inference_id IS NOT NULL)
        FROM inferences i
        LEFT JOIN corrected_outputs c ON c.inference_id = i.event_id
        LEFT JOIN negative n ON n.inference_id = i.event_id
        WHERE i.task = ? AND i.origin = 'production'
        GROUP BY ALL ORDER BY t
        """,
        [task],
    ).fetchall()
    series: dict[str, list[dict[str, Any]]] = {}
    for when, adapter, served, corrected, negative in rows:
        series.setdefault(adapter, []).append(
            {
                "t": when.isoformat(),
                "served": served,
                "correction_rate": corrected / served,
                "negative_feedback_rate": negative / served,
            }
        )
    return {"bucket": bucket, "by_adapter": series}


def quality_by_adapter(connection: duckdb.DuckDBPyConnection, task: str) -> list[dict[str, Any]]:
    """Each candidate's gate evaluation in order: its metric, the champion's on the same
    examples, the improvement's interval, the verdict, and whether it ever went live."""
    rows = (
        connection.cursor()
        .execute(
            "SELECT c.cycle_id, c.started_at, c.adapter_id, c.verdict, c.decision, "
            "EXISTS (SELECT 1 FROM champion_history h WHERE h.adapter_id = c.adapter_id) "
            "FROM cycles c WHERE c.task = ? AND c.state = 'decided' AND c.decision IS NOT NULL "
            "ORDER BY c.started_at",
            [task],
        )
        .fetchall()
    )
    out = []
    for cycle_id, started, adapter_id, verdict, decision, went_live in rows:
        evidence = json.loads(decision).get("evidence", {})
        evaluation = evidence.get("eval", {})
        out.append(
            {
                "cycle_id": cycle_id,
                "started_at": started.isoformat(),
                "adapter_id": adapter_id,
                "verdict": verdict,
                "went_live": bool(went_live),
                "metric": evidence.get("metric"),
                "candidate": evaluation.get("candidate"),
                "champion": evaluation.get("champion"),
                "delta_low": evaluation.get("delta_low"),
                "delta_high": evaluation.get("delta_high"),
                "n": evaluation.get("n"),
            }
        )
    return out


def audit_entries(
    connection: duckdb.DuckDBPyConnection, *, limit: int = 200, task: str | None = None
) -> list[dict[str, Any]]:
    rows = (
        connection.cursor()
        .execute(
            "SELECT logged_at, actor, action, task, details FROM audit_log "
            "WHERE ? IS NULL OR task = ? ORDER BY logged_at DESC LIMIT ?",
            [task, task, limit],
        )
        .fetchall()
    )
    return [
        {
            "at": r[0].isoformat(),
            "actor": r[1],
            "action": r[2],
            "task": r[3],
            "details": json.loads(r[4]) if r[4] else {},
        }
        for r in rows
    ]
