"""The control plane's housekeeping: garbage collection and online backups, one at a time.

Both run where the store lives (its thread), so neither stops ingest for longer than its
store step. A lock keeps them apart: a collection never removes an adapter directory that a
running backup's copied registry still lists.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from feedback.store_copy import copy_store
from services.backup import HomePaths, finish_backup, prepare_backup_dir, utcnow
from services.control_plane.store_worker import StoreWorker
from services.garbage_collection import collect_garbage
from training.registry import audit

log = logging.getLogger(__name__)


class Maintenance:
    def __init__(self, *, store: StoreWorker, home: Path) -> None:
        self.store = store
        self.paths = HomePaths(home)
        self._lock = asyncio.Lock()

    async def collect_garbage(
        self, *, actor: str, dry_run: bool, always_audit: bool = True
    ) -> dict[str, Any]:
        """``services.garbage_collection.collect_garbage`` on the store thread."""
        async with self._lock:
            return await self.store.call(
                collect_garbage,
                adapters_dir=self.paths.adapters,
                actor=actor,
                dry_run=dry_run,
                always_audit=always_audit,
            )

    async def scheduled_collection(self) -> None:
        """The scheduler's job: collect, audit only when something went, never raise."""
        try:
            report = await self.collect_garbage(
                actor="scheduler", dry_run=False, always_audit=False
            )
        except Exception:
            log.exception("scheduled garbage collection failed; it runs again next interval")
            return
        events = sum(e["inferences"] for e in report["raw_events"])
        if events or report["adapters"] or report["orphan_dirs"]:
            log.info(
                "garbage collection: %d expired raw inferences, %d adapters, %d orphan dirs",
                events,
                len(report["adapters"]),
                len(report["orphan_dirs"]),
            )

    async def backup(self, target: Path, *, actor: str) -> dict[str, Any]:
        """Copy the store on its thread (ingest waits only for that step), then the files it
        lists, off the event loop; audited as ``backup``. Raises BackupError."""
        async with self._lock:
            started = utcnow()
            backup = await asyncio.to_thread(
                prepare_backup_dir, target, home=self.paths.home, create=False
            )
            rows = await self.store.call(copy_store, backup.db)
            manifest = await asyncio.to_thread(
                finish_backup, backup, source=self.paths, started_at=started, rows=rows
            )
        details = {"directory": str(target), "rows": rows, "missing": manifest["missing"]}
        await self.store.call(audit, actor=actor, action="backup", task=None, details=details)
        return manifest
