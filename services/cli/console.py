"""The operator console in the terminal: quality and drift per adapter version, the audit log.
Through the running control plane's API, or the store itself when it is down."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from feedback.console import audit_entries, drift, quality_by_adapter
from services.cli.local_store import load_settings, via_api_or_store

console = Console()


def quality(
    task: Annotated[str, typer.Argument(help="The task.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Each candidate's gate metric against the champion's, and drift per adapter version
    (correction and negative-feedback rates over time)."""
    settings = load_settings()
    versions = via_api_or_store(
        settings,
        api=lambda c: c.get(f"/v1/tasks/{task}/quality"),
        local=lambda db: quality_by_adapter(db, task),
        read_only=True,
    )
    signals = via_api_or_store(
        settings,
        api=lambda c: c.get(f"/v1/tasks/{task}/drift"),
        local=lambda db: drift(db, task),
        read_only=True,
    )
    if as_json:
        sys.stdout.write(json.dumps({"quality": versions, "drift": signals}) + "\n")
        return
    table = Table(
        "cycle",
        "candidate",
        "metric",
        "champion",
        "candidate score",
        "95% CI",
        "verdict",
        "live",
        title=f"quality per adapter version: {task}",
    )
    for v in versions:
        interval = (
            f"[{v['delta_low']:+.3f}, {v['delta_high']:+.3f}]" if v["delta_low"] is not None else ""
        )
        table.add_row(
            v["cycle_id"],
            v["adapter_id"] or "",
            v["metric"] or "",
            _num(v["champion"]),
            _num(v["candidate"]),
            interval,
            v["verdict"] or "",
            "yes" if v["went_live"] else "",
        )
    console.print(table)
    rates = Table(
        "adapter",
        signals["bucket"],
        "served",
        "correction rate",
        "negative feedback",
        title="drift per adapter version",
    )
    for adapter, points in signals["by_adapter"].items():
        for p in points:
            rates.add_row(
                adapter,
                p["t"][:16],
                str(p["served"]),
                f"{p['correction_rate']:.2f}",
                f"{p['negative_feedback_rate']:.2f}",
            )
    console.print(rates)


def audit(
    task: Annotated[str | None, typer.Option(help="Only this task.")] = None,
    limit: Annotated[int, typer.Option(help="Most entries shown.")] = 50,
) -> None:
    """Who did what, newest first: promotions, approvals, reviews, tokens, alerts."""
    query = f"/v1/audit?limit={limit}" + (f"&task={task}" if task else "")
    entries = via_api_or_store(
        load_settings(),
        api=lambda c: c.get(query),
        local=lambda db: audit_entries(db, limit=limit, task=task),
        read_only=True,
    )
    table = Table("when", "who", "action", "task", "details")
    for e in entries:
        table.add_row(
            e["at"][:19], e["actor"], e["action"], e["task"] or "", json.dumps(e["details"])[:120]
        )
    console.print(table)


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"
