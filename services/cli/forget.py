"""``flywheel forget``: erase a user's (or one event's) data everywhere Flywheel keeps it.

It asks no question: the command is the operator's decision. With the control plane running
it goes through the API (the process that owns the DuckDB file); with it stopped it opens the
store here, as the other offline commands do.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import duckdb
import typer
from rich.console import Console

from feedback.compaction import compact
from feedback.erasure import Selector, SelectorError
from services.cli.local_store import fail, load_settings, via_api_or_store
from training.forget import forget as forget_in_store

console = Console(soft_wrap=True)  # one line per fact, whatever the width


def forget(
    metadata: Annotated[
        str | None,
        typer.Option("--metadata", help="KEY=VALUE: every inference carrying it (user=4711)."),
    ] = None,
    inference_id: Annotated[
        str | None, typer.Option("--inference-id", help="One inference and all attached.")
    ] = None,
    event_id: Annotated[
        str | None, typer.Option("--event-id", help="One event of any type.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The report as one JSON object.")] = False,
) -> None:
    """Erase events and everything attached (feedback, corrections, review items, dead
    letters, spooled copies, snapshot rows, gate evidence); mark adapters trained on them
    tainted and apply each task's erasure policy. Prints what was erased."""
    try:
        selector = (
            Selector.from_metadata(metadata)
            if metadata is not None
            else Selector(inference_id=inference_id, event_id=event_id)
        )
        if metadata is not None and (inference_id or event_id):
            raise SelectorError(
                "name exactly one of --metadata KEY=VALUE, --inference-id ID or --event-id ID"
            )
    except SelectorError as error:
        raise fail(str(error), 2) from error
    settings = load_settings()

    def local(connection: duckdb.DuckDBPyConnection) -> dict[str, Any]:
        report = forget_in_store(
            connection,
            selector,
            actor="local-cli",
            spool_dir=settings.spool_dir,
            cycles_dir=settings.cycles_dir,
        )
        compact(connection, settings.db_path)
        return report.as_dict()  # no retraining_waiting: nothing runs cycles now

    report = via_api_or_store(
        settings, api=lambda client: client.post("/v1/erasures", _body(selector)), local=local
    )
    if as_json:
        sys.stdout.write(json.dumps(report) + "\n")
        return
    _print(report)


def _body(selector: Selector) -> dict[str, Any]:
    if selector.metadata is not None:
        return {"metadata": {selector.metadata[0]: selector.metadata[1]}}
    if selector.inference_id is not None:
        return {"inference_id": selector.inference_id}
    return {"event_id": selector.event_id}


def _print(report: dict[str, Any]) -> None:
    erased = ", ".join(
        f"{count} {kind.replace('_', ' ')}" for kind, count in report["erased"].items()
    )
    console.print(f"erased ({report['selector']}): {erased}", highlight=False)
    console.print(f"ground truth: {report['ground_truth_removed']} examples fewer")
    console.print(
        f"snapshots rewritten: {len(report['snapshots_rewritten'])} "
        f"({report['snapshots_deleted']} left empty and deleted); "
        f"gate evidence entries cut: {report['evidence_entries_cut']}"
    )
    tainted = report["adapters_tainted"]
    console.print(f"adapters tainted: {', '.join(tainted) if tainted else 'none'}")
    for outcome in report["policies"]:
        console.print(f"{outcome['task']}: {_outcome_line(outcome, report)}", highlight=False)


def _outcome_line(outcome: dict[str, Any], report: dict[str, Any]) -> str:
    head = f"champion {outcome['tainted_champion']} learned from erased data; "
    if outcome["action"] == "rolled_back":
        return head + f"rolled back to {outcome['new_champion'] or 'the base model'}"
    waiting = report.get("retraining_waiting")
    if waiting is None:
        return head + "retraining is owed: the control plane starts it when it runs (flywheel up)"
    if outcome["task"] in waiting:
        return head + "retraining starts when the task's running cycle ends"
    return head + "a retraining cycle started (flywheel cycle list)"
