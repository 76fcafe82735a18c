"""Snapshots after an erasure: rewritten without the erased examples (or deleted when
nothing is left), and their lineage rows and counts brought in line.

A snapshot keeps its id: adapters name the snapshot they were trained on, and that lineage is
what marks them tainted. Its ``stats`` record how many examples were erased from it, so the
id is no longer read as the hash of what the file holds.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


def snapshots_holding(
    connection: duckdb.DuckDBPyConnection, inference_ids: set[str]
) -> dict[str, int]:
    """Every snapshot that holds (in train or eval) one of ``inference_ids``, with how many."""
    rows = connection.execute(
        "SELECT snapshot_id, count(*) FROM snapshot_examples "
        "WHERE inference_id IN (SELECT unnest(?::VARCHAR[])) GROUP BY snapshot_id",
        [sorted(inference_ids)],
    ).fetchall()
    return {row[0]: int(row[1]) for row in rows}


def rewrite_snapshot_files(
    connection: duckdb.DuckDBPyConnection, snapshot_ids: list[str], inference_ids: set[str]
) -> int:
    """Rewrite each snapshot's Parquet file without ``inference_ids``; a snapshot left empty
    loses its directory. Returns how many files were deleted. Files first, rows after: a
    crash in between leaves the rows, so running the same erasure again finishes it."""
    deleted = 0
    for snapshot_id in snapshot_ids:
        row = connection.execute(
            "SELECT path FROM snapshots WHERE snapshot_id = ?", [snapshot_id]
        ).fetchone()
        if row is None or not Path(row[0]).exists():
            continue
        path = Path(row[0])
        table = pq.read_table(path)
        kept = table.filter(
            pc.invert(pc.is_in(table["id"], value_set=pa.array(sorted(inference_ids), pa.string())))
        )
        if kept.num_rows == 0:
            shutil.rmtree(path.parent, ignore_errors=True)
            deleted += 1
            continue
        partial = path.with_suffix(".partial")
        pq.write_table(kept, partial)
        partial.replace(path)
    return deleted


def forget_lineage(
    connection: duckdb.DuckDBPyConnection, holding: dict[str, int], inference_ids: set[str]
) -> None:
    """Drop the erased examples' lineage rows and recount each snapshot in ``holding``
    (``snapshots_holding``: how many erased examples each held). Call inside a transaction,
    after ``rewrite_snapshot_files``."""
    connection.execute(
        "DELETE FROM snapshot_examples WHERE inference_id IN (SELECT unnest(?::VARCHAR[]))",
        [sorted(inference_ids)],
    ).fetchall()
    for snapshot_id, erased in holding.items():
        connection.execute(
            """
            UPDATE snapshots SET
                n_train = (SELECT count(*) FROM snapshot_examples e
                           WHERE e.snapshot_id = snapshots.snapshot_id AND e.split = 'train'),
                n_eval = (SELECT count(*) FROM snapshot_examples e
                          WHERE e.snapshot_id = snapshots.snapshot_id AND e.split = 'eval'),
                n_regression = (SELECT count(*) FROM snapshot_examples e
                                WHERE e.snapshot_id = snapshots.snapshot_id AND e.is_regression),
                n_new = (SELECT count(*) FROM snapshot_examples e
                         WHERE e.snapshot_id = snapshots.snapshot_id AND e.is_new),
                stats = json_merge_patch(stats, json_object('erased',
                    coalesce(json_extract(stats, '$.erased')::INTEGER, 0) + ?))
            WHERE snapshot_id = ?
            """,
            [erased, snapshot_id],
        )
