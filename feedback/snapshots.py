"""Dataset snapshots: ground truth frozen into an immutable, content-hashed training set.

A snapshot is built from the ``ground_truth`` view of one task: outputs normalised, duplicate
inputs collapsed (the latest ground truth wins, and the conflict is counted), split into train
and eval by a hash of the inference id (so an example never changes sides), and flagged as
new (not in the task's previous snapshot) or regression (a fixed mistake that must stay
fixed; see ``remember_fixed_mistakes``). It is exported as Parquet for the trainer, and
every example's inference id is recorded, so each adapter traces back to the corrections
that made it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from schemas.tasks import TaskDefinition


@dataclass(frozen=True, slots=True)
class Example:
    inference_id: str
    input: str
    output: str
    source: str
    split: str
    is_new: bool
    is_regression: bool


@dataclass(slots=True)
class Snapshot:
    snapshot_id: str
    task: str
    path: Path
    examples: list[Example]
    stats: dict[str, int] = field(default_factory=dict)
    reused: bool = False

    def count(self, *, split: str | None = None, new: bool | None = None) -> int:
        return sum(
            1
            for e in self.examples
            if (split is None or e.split == split) and (new is None or e.is_new == new)
        )


def split_of(inference_id: str, eval_fraction: float) -> str:
    """Deterministic: the same id lands in the same split in every snapshot, forever."""
    bucket = int(hashlib.sha256(inference_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "eval" if bucket < eval_fraction else "train"


def normalise_output(output: str, task: TaskDefinition) -> str | None:
    """Trimmed text; for label tasks the canonical label, or None when it is not a label."""
    text = " ".join(output.replace("\r\n", "\n").split()) if task.kind == "label" else output
    text = text.strip()
    if task.kind == "label":
        by_lower = {label.lower(): label for label in task.labels or []}
        return by_lower.get(text.lower())
    return text or None


def build_snapshot(
    connection: duckdb.DuckDBPyConnection,
    *,
    task: TaskDefinition,
    snapshots_dir: Path,
    baseline_snapshot_id: str | None = None,
) -> Snapshot:
    """Freeze the task's ground truth now; an identical snapshot is reused, not rewritten.
    Examples absent from (or changed since) ``baseline_snapshot_id``, the snapshot the
    champion was trained on, are flagged new: a rejected cycle's data stays new."""
    rows = connection.execute(
        "SELECT inference_id, input, output, source, updated_at FROM ground_truth "
        "WHERE task = ? ORDER BY updated_at, inference_id",
        [task.name],
    ).fetchall()
    regression = {
        r[0]
        for r in connection.execute(
            "SELECT inference_id FROM regression_examples WHERE task = ?", [task.name]
        ).fetchall()
    }
    previous = _snapshot_outputs(connection, baseline_snapshot_id)
    stats = {
        "ground_truth": len(rows),
        "dropped_not_a_label": 0,
        "duplicate_inputs": 0,
        "conflicting_duplicates": 0,
    }
    latest_by_input: dict[str, tuple] = {}
    for inference_id, input_text, output, source, _updated in rows:  # oldest first
        normalised = normalise_output(output, task)
        if normalised is None:
            stats["dropped_not_a_label"] += 1
            continue
        key = " ".join(input_text.split())
        if key in latest_by_input:
            stats["duplicate_inputs"] += 1
            if latest_by_input[key][2] != normalised:
                stats["conflicting_duplicates"] += 1  # the later one wins
        latest_by_input[key] = (inference_id, input_text, normalised, source)
    examples = [
        Example(
            inference_id=inference_id,
            input=input_text,
            output=output,
            source=source,
            split=split_of(inference_id, task.training.eval_fraction),
            is_new=previous.get(inference_id) != _hash(output),
            is_regression=inference_id in regression,
        )
        for inference_id, input_text, output, source in latest_by_input.values()
    ]
    examples.sort(key=lambda e: e.inference_id)
    snapshot_id = _content_hash(task.name, baseline_snapshot_id, examples)
    path = snapshots_dir / snapshot_id / "examples.parquet"
    snapshot = Snapshot(snapshot_id, task.name, path, examples, stats)
    exists = connection.execute(
        "SELECT 1 FROM snapshots WHERE snapshot_id = ?", [snapshot_id]
    ).fetchone()
    if exists and path.exists():
        snapshot.reused = True
        return snapshot
    _write_parquet(path, examples)
    _record(connection, snapshot)
    return snapshot


def load_snapshot_examples(path: Path) -> list[dict]:
    """What the trainer reads: one dict per example."""
    return pq.read_table(path).to_pylist()


def new_ground_truth_since_last_snapshot(connection: duckdb.DuckDBPyConnection, task: str) -> int:
    """Ground-truth examples not in the task's latest snapshot (or changed since): the trigger."""
    row = connection.execute(
        """
        SELECT count(*) FROM ground_truth g
        WHERE g.task = ? AND g.inference_id NOT IN (
            SELECT inference_id FROM snapshot_examples WHERE snapshot_id = (
                SELECT snapshot_id FROM snapshots WHERE task = ?
                ORDER BY created_at DESC LIMIT 1))
        """,
        [task, task],
    ).fetchone()
    return int(row[0]) if row else 0


def remember_fixed_mistakes(
    connection: duckdb.DuckDBPyConnection, *, task: str, snapshot_id: str
) -> int:
    """When an adapter trained on ``snapshot_id`` is promoted, the mistakes it was taught to
    fix (corrected outputs that differ from what the model had said) join the regression set
    and never leave it: what was fixed stays fixed. Returns how many joined. Corrections in a
    rejected candidate's data (a poisoned batch, say) never enter it."""
    row = connection.execute(
        """
        INSERT OR IGNORE INTO regression_examples
        SELECT g.task, g.inference_id, now()::TIMESTAMP, 'fixed by ' || ? || ': ' || g.source
        FROM snapshot_examples s JOIN ground_truth g ON g.inference_id = s.inference_id
        WHERE s.snapshot_id = ? AND g.task = ? AND s.source IN ('correction', 'edit')
          AND trim(lower(g.output)) <> trim(lower(g.model_output))
        """,
        [snapshot_id, snapshot_id, task],
    ).fetchone()
    return int(row[0]) if row else 0


def _snapshot_outputs(
    connection: duckdb.DuckDBPyConnection, snapshot_id: str | None
) -> dict[str, str]:
    if snapshot_id is None:
        return {}
    rows = connection.execute(
        "SELECT inference_id, output_hash FROM snapshot_examples WHERE snapshot_id = ?",
        [snapshot_id],
    ).fetchall()
    return dict(rows)


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _content_hash(task: str, baseline: str | None, examples: list[Example]) -> str:
    digest = hashlib.sha256(f"{task}\n{baseline or ''}".encode())
    for e in examples:
        digest.update(
            json.dumps([e.inference_id, e.split, e.input, e.output, e.is_regression]).encode()
        )
    return digest.hexdigest()[:16]


def _write_parquet(path: Path, examples: list[Example]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(
        [
            {
                "id": e.inference_id,
                "input": e.input,
                "output": e.output,
                "split": e.split,
                "is_new": e.is_new,
                "is_regression": e.is_regression,
                "source": e.source,
            }
            for e in examples
        ]
    )
    partial = path.with_suffix(".partial")
    pq.write_table(table, partial)
    partial.replace(path)  # readers never see half a file


def _record(connection: duckdb.DuckDBPyConnection, snapshot: Snapshot) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    examples = snapshot.examples
    connection.execute("BEGIN TRANSACTION")
    try:
        connection.execute(
            "INSERT OR IGNORE INTO snapshots VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                snapshot.snapshot_id,
                snapshot.task,
                now,
                str(snapshot.path),
                snapshot.count(split="train"),
                snapshot.count(split="eval"),
                sum(e.is_regression for e in examples),
                snapshot.count(new=True),
                json.dumps(snapshot.stats),
            ],
        )
        lineage = pa.table(
            {
                "snapshot_id": [snapshot.snapshot_id] * len(examples),
                "inference_id": [e.inference_id for e in examples],
                "split": [e.split for e in examples],
                "is_new": [e.is_new for e in examples],
                "is_regression": [e.is_regression for e in examples],
                "source": [e.source for e in examples],
                "output_hash": [_hash(e.output) for e in examples],
            }
        )
        connection.register("_lineage", lineage)
        connection.execute("INSERT INTO snapshot_examples SELECT * FROM _lineage").fetchall()
        connection.unregister("_lineage")
        connection.execute("COMMIT")
    except Exception:
        connection.execute("ROLLBACK")
        shutil.rmtree(snapshot.path.parent, ignore_errors=True)
        raise
