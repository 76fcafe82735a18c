"""Rebuild the live windows the control plane decides on from the store, at start-up.

The live monitor counts what it replays from the event topics; after a restart of the whole
``flywheel up`` the bundled broker starts empty and there is nothing to replay, while the
store still holds every answer, feedback and correction (each with its task, adapter version
and time). So at start the live guard counts, in the store, the events that occurred
**before the oldest event still on the topics** (all of them when the topics are empty), and
the monitor counts the rest: each event is counted by one source, never both.

Only the windows the guard needs are rebuilt: each task's running canary and its champion
since the canary started, and each live champion and its predecessor since the predecessor
was promoted. Counting follows ``services.live_monitor.counting`` (the same counters, the
answer's task and version, each event in the window of its own time).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb

from services.live_monitor.counting import add, outcome_counter
from training.canaries import active_canaries
from training.registry import champion_history

WindowKey = tuple[str, str | None, int]
"""(task, adapter id or None for the base model, window start in Unix seconds)."""


@dataclass(frozen=True, slots=True)
class Scope:
    """One task's versions whose windows the guard needs, from ``since`` on."""

    task: str
    versions: frozenset[str | None]
    since: datetime


def scopes(connection: duckdb.DuckDBPyConnection) -> list[Scope]:
    """What the guard decides on: running canaries (canary and champion since the start)
    and live champions (the champion and its predecessor since the predecessor's start)."""
    wanted: dict[str, tuple[set[str | None], datetime]] = {}

    def want(task: str, versions: set[str | None], since: datetime) -> None:
        known, start = wanted.get(task, (set(), since))
        wanted[task] = (known | versions, min(start, since))

    for canary in active_canaries(connection):
        started = datetime.fromisoformat(canary["started_at"].removesuffix("Z"))
        want(canary["task"], {canary["adapter_id"], canary["champion_id"]}, started)
    tasks = connection.execute("SELECT DISTINCT task FROM champion_history").fetchall()
    for (task,) in tasks:
        recent = champion_history(connection, task)[-2:]
        if recent:
            since = datetime.fromisoformat(recent[0]["since"])
            want(task, {entry["adapter_id"] for entry in recent}, since)
    return [Scope(task, frozenset(v), since) for task, (v, since) in sorted(wanted.items())]


def store_windows(
    connection: duckdb.DuckDBPyConnection, *, window_s: int, before: datetime
) -> dict[WindowKey, dict[str, int]]:
    """Each needed window's counts from the events stored that occurred before ``before``
    (naive UTC), in the live monitor's counters."""
    windows: dict[WindowKey, dict[str, int]] = defaultdict(dict)
    for scope in scopes(connection):
        for version, start, counter, times in _counted(connection, scope, window_s, before):
            if version in scope.versions:
                key = (scope.task, version, start)
                windows[key] = add(windows[key], counter, times)
    return dict(windows)


_WINDOW = "CAST(floor(epoch({t}) / $window) * $window AS BIGINT)"
_ANSWERS = f"""
    SELECT adapter_id, {_WINDOW.format(t="occurred_at")}, count(*) FROM inferences
    WHERE task = $task AND origin <> 'import' AND occurred_at >= $since AND occurred_at < $before
    GROUP BY ALL
"""
_FEEDBACK = f"""
    SELECT i.adapter_id, {_WINDOW.format(t="f.occurred_at")}, f.signal, f.rating, count(*)
    FROM feedback f JOIN inferences i ON i.event_id = f.inference_id
    WHERE i.task = $task AND i.origin <> 'import'
      AND f.occurred_at >= $since AND f.occurred_at < $before
    GROUP BY ALL
"""
_CORRECTIONS = f"""
    SELECT i.adapter_id, {_WINDOW.format(t="c.occurred_at")}, count(*)
    FROM corrections c JOIN inferences i ON i.event_id = c.inference_id
    WHERE i.task = $task AND i.origin <> 'import'
      AND c.occurred_at >= $since AND c.occurred_at < $before
    GROUP BY ALL
"""


def _counted(
    connection: duckdb.DuckDBPyConnection, scope: Scope, window_s: int, before: datetime
) -> list[tuple[str | None, int, str, int]]:
    """(version, window start, counter, how many) for one scope's stored events."""
    since_s = scope.since.replace(tzinfo=UTC).timestamp()
    params: dict[str, Any] = {
        "task": scope.task,
        "window": window_s,
        # from the start of the window holding ``since``, as the guard sums whole windows
        "since": datetime.fromtimestamp(since_s - since_s % window_s, UTC).replace(tzinfo=None),
        "before": before,
    }
    rows: list[tuple[str | None, int, str, int]] = [
        (version, start, "answers", n)
        for version, start, n in connection.execute(_ANSWERS, params).fetchall()
    ]
    for version, start, signal, rating, n in connection.execute(_FEEDBACK, params).fetchall():
        counter = outcome_counter({"signal": signal, "rating": rating})
        if counter is not None:
            rows.append((version, start, counter, n))
    rows += [
        (version, start, "corrected", n)
        for version, start, n in connection.execute(_CORRECTIONS, params).fetchall()
    ]
    return rows
