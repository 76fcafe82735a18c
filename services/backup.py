"""``flywheel backup`` and ``flywheel restore``: a FLYWHEEL_HOME copied while it runs, and put back.

A backup directory is laid out like a home: ``flywheel.duckdb`` (a consistent copy made by the
process that owns the store, ``feedback.store_copy``), ``adapters/`` and ``snapshots/`` (the
files the copied registry lists; they are immutable and named by content, so copying them
after the store is consistent), ``spool/`` (events an inference server has not delivered to
Kafka yet) and ``manifest.json``, written last: a directory without one is not a backup.
The converted base model, cycle working files, logs and run files are rebuilt or not needed.

Files are copied without their modes, so they get the process's private umask (0600).
A restore goes into an empty FLYWHEEL_HOME only, so it never mixes two stores; it points the
registry's paths at the new home, and ``flywheel up`` there starts from the copy.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from feedback.exceptions import FeedbackError
from feedback.private_files import private_dir
from feedback.store import connect, schema_version
from services.errors import ServiceError
from training.registry import audit

MANIFEST = "manifest.json"
BACKUP_FORMAT = 1


class BackupError(ServiceError):
    """A backup or restore that cannot be made; the message says what to do instead."""


@dataclass(frozen=True, slots=True)
class HomePaths:
    """Where a home (or a backup, laid out the same way) keeps what a backup holds."""

    home: Path

    @property
    def db(self) -> Path:
        return self.home / "flywheel.duckdb"

    @property
    def adapters(self) -> Path:
        return self.home / "adapters"

    @property
    def snapshots(self) -> Path:
        return self.home / "snapshots"

    @property
    def spool(self) -> Path:
        return self.home / "spool"


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def prepare_backup_dir(target: Path, *, home: Path, create: bool) -> HomePaths:
    """Check ``target`` for a backup of ``home``: an absolute path outside the home, an empty
    directory only this user can read (a backup holds every event and the token hashes).
    With ``create`` (the CLI) it is made 0700 when absent; without (the API, which writes
    wherever a caller names) it must exist already, so a request never creates directories."""
    if not target.is_absolute():
        raise BackupError(f"{target} is not an absolute path; give the backup directory in full")
    if target.resolve().is_relative_to(home.resolve()):
        raise BackupError(
            f"{target} is inside FLYWHEEL_HOME ({home}), so a backup there is lost with the "
            "home; choose a directory outside it, ideally on another disk"
        )
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise BackupError(f"{target} is not an empty directory; back up into a new or empty one")
    if create:
        try:
            private_dir(target)
        except FeedbackError as error:
            raise BackupError(str(error)) from error
    elif not target.exists():
        raise BackupError(f"{target} does not exist; create it first: mkdir -m 700 {target}")
    else:
        _refuse_shared(target)
    return HomePaths(target)


def _refuse_shared(target: Path) -> None:
    info = target.stat()
    if info.st_uid != os.geteuid() or stat.S_IMODE(info.st_mode) & 0o077:
        raise BackupError(
            f"{target} is not private to the control plane's user (mode "
            f"{stat.S_IMODE(info.st_mode):04o}); a backup holds every event and the token "
            f"hashes: chown it to that user and chmod 700 {target}"
        )


def finish_backup(
    backup: HomePaths, *, source: HomePaths, started_at: datetime, rows: dict[str, int]
) -> dict[str, Any]:
    """Copy the files the copied store lists, and the spool, then write the manifest. The
    manifest maps each stored path to its place in the backup, so a restore can repoint the
    registry wherever the new home is (stored paths may be relative to the old one's cwd)."""
    adapters, snapshots, version = _listed_in(backup.db)
    files: dict[str, dict[str, str]] = {"adapters": {}, "snapshots": {}}
    missing = []
    for stored, (found, place) in _placed(adapters, source.adapters, "adapters").items():
        _copy_into(found, backup.home / place, files["adapters"], stored, place, missing)
    for stored, (found, place) in _placed(snapshots, source.snapshots, "snapshots").items():
        _copy_into(found, backup.home / place, files["snapshots"], stored, place, missing)
    manifest = {
        "format": BACKUP_FORMAT,
        "started_at": started_at.isoformat() + "Z",
        "finished_at": utcnow().isoformat() + "Z",
        "source": str(source.home.resolve()),
        "schema_version": version,
        "rows": rows,
        "spool_files": _copy_present_files(source.spool, backup.spool),
        "missing": missing,
        "files": files,
    }
    (backup.home / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return {"directory": str(backup.home), **manifest}


def _listed_in(db: Path) -> tuple[dict[str, str], dict[str, str], int]:
    """Id -> stored path of every adapter and snapshot in a copied store, and its schema."""
    connection = duckdb.connect(str(db), read_only=True)
    try:
        adapters = dict(connection.execute("SELECT adapter_id, path FROM adapters").fetchall())
        snapshots = dict(connection.execute("SELECT snapshot_id, path FROM snapshots").fetchall())
        return adapters, snapshots, schema_version(connection)
    finally:
        connection.close()


def _placed(listed: dict[str, str], source_dir: Path, kind: str) -> dict[str, tuple[Path, str]]:
    """Stored path -> (the file or directory to copy, its place in the backup). A stored path
    under the home's directory keeps its place under it; any other goes by its id."""
    placed = {}
    base = source_dir.resolve()
    for item_id, stored in listed.items():
        found = Path(stored).resolve()
        inside = found.relative_to(base) if found.is_relative_to(base) else Path(item_id)
        placed[stored] = (found, f"{kind}/{inside.as_posix()}")
    return placed


def _copy_into(
    found: Path, target: Path, files: dict[str, str], stored: str, place: str, missing: list[str]
) -> None:
    """Copy one adapter directory or snapshot file, or note that it is missing."""
    if not found.exists():
        missing.append(f"{place}: {found} no longer exists")
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    if found.is_dir():
        shutil.copytree(found, target, copy_function=shutil.copyfile)
    else:
        shutil.copyfile(found, target)
    files[stored] = place


def _copy_present_files(source: Path, target: Path) -> int:
    """Copy a directory whose files others add and delete meanwhile (the spool: a segment is
    deleted once delivered); a file gone before it was read was delivered, so it is skipped."""
    copied = 0
    for path in sorted(source.rglob("*")) if source.is_dir() else []:
        if not path.is_file():
            continue
        destination = target / path.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copyfile(path, destination)
        except FileNotFoundError:
            continue
        copied += 1
    return copied


def restore(backup_dir: Path, *, into: HomePaths, actor: str) -> dict[str, Any]:
    """Put a backup into an empty home and point the registry's paths at it; audited there
    as ``restore``. Returns the backup's manifest."""
    backup = HomePaths(backup_dir)
    manifest = read_manifest(backup_dir)
    refuse_used_home(into.home)
    private_dir(into.home)
    shutil.copyfile(backup.db, into.db)
    for source, target in ((backup.adapters, into.adapters), (backup.snapshots, into.snapshots)):
        if source.is_dir():
            shutil.copytree(source, target, copy_function=shutil.copyfile)
    _copy_present_files(backup.spool, into.spool)
    connection = connect(into.db)  # also migrates a backup taken by an older Flywheel
    try:
        for table in ("adapters", "snapshots"):
            _repoint(connection, table, manifest["files"][table], into.home)
        details = {"backup": str(backup_dir), "started_at": manifest["started_at"]}
        audit(connection, actor=actor, action="restore", task=None, details=details)
    finally:
        connection.close()
    return manifest


def read_manifest(backup_dir: Path) -> dict[str, Any]:
    """The manifest of a complete backup; BackupError for anything else."""
    try:
        manifest = json.loads((backup_dir / MANIFEST).read_text())
    except FileNotFoundError:
        raise BackupError(
            f"{backup_dir} is not a complete Flywheel backup (no {MANIFEST}): give the directory "
            "`flywheel backup` wrote, and check that the backup finished"
        ) from None
    except (OSError, ValueError) as error:
        raise BackupError(f"{backup_dir / MANIFEST} cannot be read: {error}") from error
    if manifest.get("format") != BACKUP_FORMAT or not (backup_dir / "flywheel.duckdb").is_file():
        raise BackupError(f"{backup_dir} is not a backup this Flywheel can restore")
    return dict(manifest)


def refuse_used_home(home: Path) -> None:
    """BackupError unless ``home`` is absent or an empty directory."""
    if home.exists() and (not home.is_dir() or any(home.iterdir())):
        held = ", ".join(sorted(p.name for p in home.iterdir())[:5]) if home.is_dir() else "a file"
        raise BackupError(
            f"FLYWHEEL_HOME={home} is not empty (it holds {held}); a restore never overwrites "
            "a store: set FLYWHEEL_HOME to a new, empty directory and run flywheel restore again"
        )


def _repoint(
    connection: duckdb.DuckDBPyConnection, table: str, places: dict[str, str], home: Path
) -> None:
    """Point ``table.path`` of each backed-up file at its copy in the new home."""
    root = home.resolve()
    for stored, place in places.items():
        connection.execute(
            f"UPDATE {table} SET path = ? WHERE path = ?", [str(root / place), stored]
        )
