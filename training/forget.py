"""``flywheel forget``: erase a selector's events from the store, the files beside it, and
the adapters that learned from them.

One call, on the store's connection (the control plane's store thread, or the CLI's own
connection while the control plane is down):

1. find the stored events the selector names and everything attached (``feedback.erasure``);
2. cut spooled copies from the disk spools, then the erased examples from the snapshot
   Parquet files and the cycles' evidence files. Files go first: a crash after them leaves
   the rows, so running the same erasure again finds and finishes it;
3. in one transaction: delete the rows, drop their lineage and recount the snapshots, keep
   keyed hashes of the erased ids (ingest refuses them from then on), mark every adapter
   trained or evaluated on them tainted, apply each affected task's erasure policy, and
   write one audit entry: who, which selector, how many records; never any content.

The caller then rewrites the DuckDB file (``feedback.compaction``), since DuckDB keeps
deleted strings in freed blocks, and publishes any rollback to the inference servers.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from feedback.erased_ids import remember_erased
from feedback.erasure import (
    Selector,
    delete_matches,
    find_matches,
    ground_truth_count,
    stored_inferences,
)
from feedback.snapshot_erasure import forget_lineage, rewrite_snapshot_files, snapshots_holding
from feedback.spool_erasure import scrub_spools, spooled_match
from training.cycle_erasure import scrub_cycle_records
from training.registry import audit, transaction
from training.taint import (
    PolicyOutcome,
    apply_policies,
    remember_erased_snapshots,
    taint_adapters,
)

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ErasureReport:
    """What one erasure did, in counts and ids (never content): what ``flywheel forget``
    prints and the API answers."""

    erasure_id: str
    selector: str
    erased: dict[str, int]
    ground_truth_removed: int
    snapshots_rewritten: list[str] = field(default_factory=list)
    snapshots_deleted: int = 0
    evidence_entries_cut: int = 0
    adapters_tainted: list[str] = field(default_factory=list)
    policies: list[PolicyOutcome] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "erasure_id": self.erasure_id,
            "selector": self.selector,
            "erased": self.erased,
            "ground_truth_removed": self.ground_truth_removed,
            "snapshots_rewritten": self.snapshots_rewritten,
            "snapshots_deleted": self.snapshots_deleted,
            "evidence_entries_cut": self.evidence_entries_cut,
            "adapters_tainted": self.adapters_tainted,
            "policies": [outcome.as_dict() for outcome in self.policies],
        }

    def promotions(self) -> list[dict[str, Any]]:
        """Champion changes to tell the inference servers about (rollbacks)."""
        return [o.message for o in self.policies if o.message is not None]


def forget(
    connection: duckdb.DuckDBPyConnection,
    selector: Selector,
    *,
    actor: str,
    spool_dir: Path,
    cycles_dir: Path,
) -> ErasureReport:
    """Erase what ``selector`` names everywhere Flywheel keeps it (see the module doc)."""
    erasure_id = uuid.uuid4().hex[:12]
    matches = find_matches(connection, selector)
    spooled = scrub_spools(spool_dir, spooled_match(selector, matches.event_ids()))
    stored = stored_inferences(connection, matches.inference_ids)
    holding = snapshots_holding(connection, matches.inference_ids)
    deleted = rewrite_snapshot_files(connection, sorted(holding), matches.inference_ids)
    ground_truth_before = ground_truth_count(connection)
    with transaction(connection):
        cut = scrub_cycle_records(connection, cycles_dir, matches.inference_ids)
        delete_matches(connection, matches)
        forget_lineage(connection, holding, matches.inference_ids)
        remember_erased(connection, matches.event_ids() | spooled)
        tainted = taint_adapters(connection, sorted(holding), erasure_id=erasure_id)
        remember_erased_snapshots(connection, sorted(holding), erasure_id=erasure_id)
        outcomes = apply_policies(connection, erasure_id=erasure_id, actor=actor)
        report = ErasureReport(
            erasure_id=erasure_id,
            selector=selector.describe(),
            erased={
                "inference": len(stored),
                "feedback": len(matches.feedback_ids),
                "correction": len(matches.correction_ids),
                "review_item": matches.review_items,
                "dead_letter": len(matches.rejection_ids),
                "spooled": len(spooled),
            },
            ground_truth_removed=ground_truth_before - ground_truth_count(connection),
            snapshots_rewritten=sorted(holding),
            snapshots_deleted=deleted,
            evidence_entries_cut=cut,
            adapters_tainted=tainted,
            policies=outcomes,
        )
        details = report.as_dict()
        audit(connection, actor=actor, action="forget", task=None, details=details)
    log.info(
        "erasure %s by %s: %s records erased, %d adapters tainted",
        erasure_id,
        actor,
        sum(report.erased.values()),
        len(tainted),
    )
    return report
