"""Erasure in the disk spools under FLYWHEEL_HOME: copies of events waiting for Kafka.

The inference servers of this home spool what they cannot deliver under ``spool/<server>/``
(``feedback.spool``). A spooled copy of an erased event is cut out of its segment, which is
rewritten beside itself and renamed over the old one (a segment left empty is deleted), so
no erased line survives on disk. The ids of the events cut are returned: they are erased
too, so a copy that reached Kafka before the cut is refused when it is read.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from feedback.erasure import Selector

log = logging.getLogger(__name__)


def spooled_match(selector: Selector, erased_ids: set[str]) -> Callable[[dict[str, Any]], bool]:
    """Whether a spooled event is erased: it carries the selector's metadata pair, or its
    id (or the inference it is about) is among ``erased_ids``."""

    def matches(event: dict[str, Any]) -> bool:
        ids = {event.get("event_id"), event.get("inference_id")} - {None}
        if not ids.isdisjoint(erased_ids):
            return True
        if selector.metadata is None or event.get("type") != "inference":
            return False
        key, value = selector.metadata
        metadata = event.get("metadata") or {}
        return key in metadata and _as_text(metadata[key]) == value

    return matches


def scrub_spools(spool_root: Path, matches: Callable[[dict[str, Any]], bool]) -> set[str]:
    """Cut every matching event out of the spool segments under ``spool_root``; returns the
    ids of the events cut."""
    cut: set[str] = set()
    if not spool_root.is_dir():
        return cut
    for segment in sorted(spool_root.rglob("*.jsonl")):
        cut |= _scrub_segment(segment, matches)
    return cut


def _scrub_segment(segment: Path, matches: Callable[[dict[str, Any]], bool]) -> set[str]:
    try:
        lines = segment.read_text(encoding="utf-8").splitlines(keepends=True)
    except FileNotFoundError:  # delivered and deleted meanwhile
        return set()
    kept, cut = [], set()
    for line in lines:
        event = _event_of(line)
        if event is not None and matches(event):
            cut.add(str(event.get("event_id")))
        else:
            kept.append(line)
    if not cut:
        return cut
    if not kept:
        segment.unlink(missing_ok=True)
        return cut
    rewritten = segment.with_suffix(".scrubbing")
    with open(rewritten, "w", encoding="utf-8") as handle:
        handle.writelines(kept)
        handle.flush()
        os.fsync(handle.fileno())
    rewritten.replace(segment)
    return cut


def _event_of(line: str) -> dict[str, Any] | None:
    """The event a spool line carries; None for a torn line (kept: it is nobody's event)."""
    try:
        event = json.loads(json.loads(line)["value"])
    except (ValueError, KeyError, TypeError):
        return None
    return event if isinstance(event, dict) else None


def _as_text(value: object) -> str:
    """A metadata value as ``--metadata KEY=VALUE`` spells it (as DuckDB's JSON reads it)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
