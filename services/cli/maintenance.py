"""``flywheel gc``, ``flywheel backup`` and ``flywheel restore``.

Through the running control plane (it owns the store), or on the DuckDB file itself when it
is stopped. A restore needs no control plane: it goes into an empty FLYWHEEL_HOME.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from feedback.exceptions import FeedbackError
from feedback.private_files import PRIVATE_UMASK
from services.cli.control_plane_client import ControlPlaneClient, ControlPlaneRefused
from services.cli.home import open_private_home
from services.cli.local_store import fail, load_settings, open_store, via_api_or_store
from services.settings import Settings

console = Console()
BACKUP_TIMEOUT_S = 6 * 3600.0
"""How long the CLI waits for the control plane to finish a backup: copying is the bound."""


def gc(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would go; delete nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Delete raw events past their task's retention period, adapters that are neither
    champions, past champions, their ancestors nor awaiting approval, and orphaned adapter
    directories. The scheduler does this hourly; the run is audited."""
    from services.garbage_collection import collect_garbage

    settings = load_settings()
    report = via_api_or_store(
        settings,
        api=lambda c: c.post("/v1/gc", {"dry_run": dry_run}),
        local=lambda db: collect_garbage(
            db, adapters_dir=settings.adapters_dir, actor="local-cli", dry_run=dry_run
        ),
        read_only=dry_run,
    )
    if as_json:
        sys.stdout.write(json.dumps(report) + "\n")
        return
    _print_collection(report)


def _print_collection(report: dict[str, Any]) -> None:
    verb = "would delete" if report["dry_run"] else "deleted"
    table = Table("task", "stored before", "raw inferences", "rejected events", title=verb)
    for entry in report["raw_events"]:
        table.add_row(
            entry["task"],
            entry["stored_before"][:19],
            str(entry["inferences"]),
            str(entry["rejected_events"]),
        )
    if report["raw_events"]:
        console.print(table)
    else:
        console.print("no task has a retention period (retention.raw_inference_days)")
    console.print(f"adapters: {verb} {len(report['adapters'])}")
    for adapter_id in report["adapters"]:
        console.print(f"  {adapter_id}")
    console.print(f"orphaned adapter directories: {verb} {len(report['orphan_dirs'])}")
    for name in report["orphan_dirs"]:
        console.print(f"  {name}")
    if report["orphans_deferred_by_cycles"]:
        cycles = ", ".join(report["orphans_deferred_by_cycles"])
        console.print(f"orphaned directories wait until these cycles finish: {cycles}")


def backup(
    directory: Annotated[Path, typer.Argument(help="A new or empty directory outside the home.")],
) -> None:
    """Copy the store, adapters, snapshots and spool while the control plane runs (through
    it: ingest carries on), or directly when it is stopped."""
    from services.backup import BackupError, prepare_backup_dir

    os.umask(PRIVATE_UMASK)  # a backup holds every event and the token hashes: 0600 files
    settings = load_settings()
    target = directory.expanduser().resolve()
    client = ControlPlaneClient.discover(settings)
    try:
        prepare_backup_dir(target, home=settings.home, create=True)
        if client is not None:
            manifest = client.post(
                "/v1/backup", {"directory": str(target)}, timeout_s=BACKUP_TIMEOUT_S
            )
        else:
            manifest = _backup_here(settings, target)
    except (ControlPlaneRefused, BackupError, FeedbackError) as error:
        raise fail(str(error)) from error
    except OSError as error:
        raise fail(f"the backup into {target} failed: {error}") from error
    rows = manifest["rows"]
    console.print(
        f"backed up to {target}: {rows['inferences']} inferences, {rows['feedback']} feedback, "
        f"{rows['corrections']} corrections, {len(manifest['files']['adapters'])} adapters, "
        f"{len(manifest['files']['snapshots'])} snapshots, {manifest['spool_files']} spool files"
    )
    for problem in manifest["missing"]:
        console.print(f"[yellow]not copied:[/yellow] {problem}")


def _backup_here(settings: Settings, target: Path) -> dict[str, Any]:
    """With the control plane stopped: the same steps on a read-only connection."""
    from feedback.store_copy import copy_store
    from services.backup import HomePaths, finish_backup, utcnow
    from training.registry import audit

    started = utcnow()
    backup_paths = HomePaths(target)  # checked and created by the caller
    with open_store(settings, read_only=True) as connection:
        rows = copy_store(connection, backup_paths.db)
    manifest = finish_backup(
        backup_paths, source=HomePaths(settings.home), started_at=started, rows=rows
    )
    with open_store(settings) as connection:
        details = {"directory": str(target), "rows": rows, "missing": manifest["missing"]}
        audit(connection, actor="local-cli", action="backup", task=None, details=details)
    return manifest


def restore(
    directory: Annotated[Path, typer.Argument(help="A directory `flywheel backup` wrote.")],
) -> None:
    """Restore a backup into an empty FLYWHEEL_HOME; then `flywheel up` starts from it."""
    from services.backup import BackupError, HomePaths, read_manifest, refuse_used_home
    from services.backup import restore as restore_backup

    settings = load_settings()
    try:
        read_manifest(directory)  # a wrong directory or a used home: refused before any write
        refuse_used_home(settings.home)
        open_private_home(settings)
        manifest = restore_backup(directory, into=HomePaths(settings.home), actor="local-cli")
    except (BackupError, FeedbackError) as error:
        raise fail(str(error)) from error
    except OSError as error:
        raise fail(
            f"the restore into {settings.home} stopped half-way ({error}); empty that directory "
            "and run flywheel restore again"
        ) from error
    rows = manifest["rows"]
    console.print(
        f"restored the backup of {manifest['started_at'][:19]} into {settings.home}: "
        f"{rows['inferences']} inferences; start it with flywheel up"
    )
