"""``flywheel canary status TASK`` and ``flywheel canary end TASK``: the live guard's view."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from services.cli.control_plane_client import ControlPlaneClient, ControlPlaneRefused
from services.cli.local_store import fail, load_settings

canary_app = typer.Typer(
    help="Canaries: candidates on a fraction of live traffic.", no_args_is_help=True
)
console = Console()


def _client() -> ControlPlaneClient:
    client = ControlPlaneClient.discover(load_settings())
    if client is None:
        raise fail("the control plane is not running: start it with `flywheel up`")
    return client


@canary_app.command("status")
def canary_status(
    task: str,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """The task's canary, its latest decision with the interval, and live rates per version."""
    try:
        shown = _client().get(f"/v1/tasks/{task}/canary")
    except ControlPlaneRefused as error:
        raise fail(str(error)) from error
    if as_json:
        sys.stdout.write(json.dumps(shown) + "\n")
        return
    _print(shown)


@canary_app.command("end")
def canary_end(
    task: str,
    outcome: Annotated[str, typer.Argument(help="promote or rollback")],
    reason: Annotated[str, typer.Option("--reason")] = "",
) -> None:
    """Promote or roll back the task's canary by hand (operator or admin)."""
    if outcome not in ("promote", "rollback"):
        raise fail("OUTCOME is promote or rollback", 2)
    try:
        message = _client().post(
            f"/v1/tasks/{task}/canary/end", {"outcome": outcome, "reason": reason}
        )
    except ControlPlaneRefused as error:
        raise fail(str(error)) from error
    console.print(f"canary of {task}: {outcome}; champion now {message['adapter_id'] or 'base'}")


def _print(shown: dict[str, Any]) -> None:
    canary = shown["canary"]
    if canary is None:
        console.print(f"task {shown['task']}: no running canary")
    else:
        fraction = canary["policy"]["fraction"]
        console.print(
            f"task {shown['task']}: canary {canary['adapter_id']} on {fraction:.0%} of callers "
            f"since {canary['started_at']} (champion {canary['champion_id'] or 'base'})"
        )
    decision = shown.get("decision")
    if decision:
        console.print(f"latest decision: [bold]{decision['action']}[/bold]: {decision['reason']}")
    table = Table("window start", "version", "answers", "judged", "negative", "negative rate")
    for row in shown["windows"][-20:]:
        rate = row["negative_rate"]
        table.add_row(
            str(row["window_start"]),
            row["adapter_id"] or "base",
            str(row["answers"]),
            str(row["judged"]),
            str(row["negative"]),
            "-" if rate is None else f"{rate:.3f}",
        )
    console.print(table)
    for past in shown["history"]:
        if past["outcome"]:
            console.print(f"ended {past['ended_at']}: {past['outcome']} by {past['actor']}")
