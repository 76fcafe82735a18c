"""Registry data for tests: adapter directories named by their content hash (as training
writes them, without training), and a store holding one fixed mistake to remember."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from feedback.snapshots import build_snapshot
from feedback.writer import write_batch
from schemas import CorrectionEvent, InferenceEvent
from schemas.tasks import TaskDefinition
from training.adapter_files import adapter_content_hash
from training.registry import register_adapter
from training.task_records import create_task

T0 = datetime(2026, 11, 1, tzinfo=UTC)
SPAM = TaskDefinition(
    name="spam", instruction="Is this email spam or ham?", kind="label", labels=["spam", "ham"]
)


def write_adapter(adapters_dir: Path, weights: bytes) -> str:
    """An adapter directory whose name is the hash of its files; returns its id."""
    scratch = adapters_dir / ".scratch"
    scratch.mkdir(parents=True)
    (scratch / "adapter_config.json").write_text('{"r": 8}')
    (scratch / "adapter_model.safetensors").write_bytes(weights)
    adapter_id = adapter_content_hash(scratch)
    scratch.rename(adapters_dir / adapter_id)
    return adapter_id


def corrupt(adapters_dir: Path, adapter_id: str) -> None:
    """Truncate the weights, as a half-copied file would be."""
    weights = adapters_dir / adapter_id / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:3])


def seed_registry(connection: duckdb.DuckDBPyConnection, home: Path) -> tuple[str, str]:
    """Task ``spam`` with one corrected mistake (i1: the model said ham, a reviewer spam) in a
    snapshot, and two adapters trained on that snapshot; returns their ids."""
    create_task(connection, SPAM)
    write_batch(
        connection,
        [
            InferenceEvent(
                event_id=f"i{i}",
                occurred_at=T0 + timedelta(seconds=i),
                task="spam",
                input=f"email number {i}",
                output="ham",
                base_model="smollm2",
            )
            for i in (1, 2)
        ]
        + [
            CorrectionEvent(
                event_id="c1",
                occurred_at=T0 + timedelta(minutes=10),
                task="spam",
                inference_id="i1",
                corrected_output="spam",
                reviewer="ana",
            )
        ],
    )
    snapshot = build_snapshot(connection, task=SPAM, snapshots_dir=home / "snapshots")
    ids = []
    for weights in (b"first adapter weights", b"second adapter weights"):
        adapter_id = write_adapter(home / "adapters", weights)
        register_adapter(
            connection,
            adapter_id=adapter_id,
            task="spam",
            base_model="smol",
            parent_adapter=None,
            snapshot_id=snapshot.snapshot_id,
            path=home / "adapters" / adapter_id,
            metadata={},
        )
        ids.append(adapter_id)
    return ids[0], ids[1]
