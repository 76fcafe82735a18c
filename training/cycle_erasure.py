"""Cycle records after an erasure: the gate's evidence lists examples side by side (input,
reference, both answers) and a worker's result file scores every eval example. Entries
about an erased example are cut from both, wherever they sit in the JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb


def without_examples(value: Any, ids: set[str]) -> tuple[Any, int]:
    """``value`` with every object whose ``id`` is in ``ids`` removed from the lists that hold
    it; returns the new value and how many were removed."""
    if isinstance(value, list):
        kept, removed = [], 0
        for item in value:
            if isinstance(item, dict) and item.get("id") in ids:
                removed += 1
                continue
            item, inner = without_examples(item, ids)
            kept.append(item)
            removed += inner
        return kept, removed
    if isinstance(value, dict):
        out, removed = {}, 0
        for key, item in value.items():
            out[key], inner = without_examples(item, ids)
            removed += inner
        return out, removed
    return value, 0


def scrub_cycle_records(
    connection: duckdb.DuckDBPyConnection, cycles_dir: Path, inference_ids: set[str]
) -> int:
    """Cut the erased examples from every cycle's decision and from the JSON files in its
    directory (job, result); returns how many entries were cut. Files are rewritten in
    place before the rows, so running the erasure again finishes an interrupted one."""
    cut = 0
    for path in sorted(cycles_dir.glob("*/*.json")) if cycles_dir.is_dir() else []:
        cut += _scrub_file(path, inference_ids)
    rows = connection.execute(
        "SELECT cycle_id, decision FROM cycles WHERE decision IS NOT NULL"
    ).fetchall()
    for cycle_id, decision in rows:
        cleaned, removed = without_examples(json.loads(decision), inference_ids)
        if removed:
            connection.execute(
                "UPDATE cycles SET decision = ? WHERE cycle_id = ?",
                [json.dumps(cleaned), cycle_id],
            )
            cut += removed
    return cut


def _scrub_file(path: Path, ids: set[str]) -> int:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 0
    cleaned, removed = without_examples(value, ids)
    if removed:
        partial = path.with_suffix(".scrubbing")
        partial.write_text(json.dumps(cleaned), encoding="utf-8")
        partial.replace(path)
    return removed
