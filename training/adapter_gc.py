"""Garbage collection of adapters: what no champion, past or waiting, will ever need again.

An adapter stays while it is a champion, was one (rollback and "what was live at time T"
need it), is an ancestor of one (lineage), or is a candidate awaiting an operator's
approval. Every other registered adapter (candidates the gate or an operator rejected) is
collectable: its directory and its registry row go. So do orphans in the adapter directory:
``.adapter-*`` scratch directories a killed training worker left, and directories the
registry does not know. While a cycle is running its new adapter is on disk before it is
registered, so orphans are only collected when no cycle is live.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb

from training.adapter_files import adapter_dir
from training.cycle_records import ACTIVE_STATES


@dataclass(frozen=True, slots=True)
class AdapterGarbage:
    """Registered adapters and orphan directories that can go, and why orphans wait."""

    adapters: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    orphans_deferred_by: list[str] = field(default_factory=list)
    """Live cycles that keep orphans in place until they finish."""

    def as_dict(self) -> dict[str, list[str]]:
        return {
            "adapters": self.adapters,
            "orphan_dirs": self.orphans,
            "orphans_deferred_by_cycles": self.orphans_deferred_by,
        }


def kept_adapters(connection: duckdb.DuckDBPyConnection) -> set[str]:
    """Champions, past champions, candidates awaiting approval, and all their ancestors."""
    rows = connection.execute(
        """
        WITH RECURSIVE kept(adapter_id) AS (
            SELECT adapter_id FROM champion_history WHERE adapter_id IS NOT NULL
            UNION
            SELECT adapter_id FROM cycles
            WHERE verdict = 'await_approval' AND adapter_id IS NOT NULL
            UNION
            SELECT a.parent_adapter FROM adapters a JOIN kept k ON a.adapter_id = k.adapter_id
            WHERE a.parent_adapter IS NOT NULL
        )
        SELECT adapter_id FROM kept
        """
    ).fetchall()
    return {row[0] for row in rows}


def find_adapter_garbage(
    connection: duckdb.DuckDBPyConnection, *, adapters_dir: Path, now: datetime
) -> AdapterGarbage:
    """What a collection would remove at ``now`` (naive UTC)."""
    kept = kept_adapters(connection)
    registered = {
        row[0] for row in connection.execute("SELECT adapter_id FROM adapters").fetchall()
    }
    live = [
        row[0]
        for row in connection.execute(
            f"SELECT cycle_id FROM cycles WHERE state IN {ACTIVE_STATES} "
            "AND (lease_expires_at IS NULL OR lease_expires_at > ?) ORDER BY cycle_id",
            [now],
        ).fetchall()
    ]
    orphans = [name for name in _directories(adapters_dir) if name not in registered]
    return AdapterGarbage(
        adapters=sorted(registered - kept),
        orphans=[] if live else orphans,
        orphans_deferred_by=live if orphans else [],
    )


def _directories(parent: Path) -> list[str]:
    """Names of the real directories (not links) directly under ``parent``."""
    if not parent.is_dir():
        return []
    return sorted(p.name for p in parent.iterdir() if p.is_dir() and not p.is_symlink())


def unregister_adapters(connection: duckdb.DuckDBPyConnection, garbage: AdapterGarbage) -> None:
    """Delete the collectable adapters' registry rows, in the caller's transaction."""
    for adapter_id in garbage.adapters:
        connection.execute("DELETE FROM adapters WHERE adapter_id = ?", [adapter_id])


def remove_adapter_dirs(garbage: AdapterGarbage, *, adapters_dir: Path) -> None:
    """Delete the directories, once the registry no longer lists them. Registered adapters
    are found under ``adapters_dir`` by id and orphans by the name they were listed under,
    never by a stored path, so nothing outside the adapter store can be removed."""
    targets = [adapter_dir(adapters_dir, a) for a in garbage.adapters]
    targets += [adapters_dir / name for name in garbage.orphans]
    for target in targets:
        shutil.rmtree(target, ignore_errors=True)
