"""What one event adds to the live monitor's windows: pure functions, no faust, no Kafka.

An inference event counts as an answer of its (task, adapter version); feedback and
corrections count against the version of the answer they name. Feedback can arrive before
its answer (producers race, topics are separate); it then waits, keyed by the answer's id,
and is counted when the answer arrives: the ground-truth view joins events the same way, by
inference id, whatever their order.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

BASE = "base"
"""The version name of answers from the base model (no adapter)."""
SEPARATOR = "|"


@dataclass(frozen=True, slots=True)
class Observation:
    """What an event says: ``kind`` is answer / outcome; ``counter`` names what to add."""

    kind: str
    inference_id: str
    task: str
    counter: str
    window_start: int
    version: str | None = None
    """Set on answers only; an outcome learns its version from its answer."""


def window_start(occurred_at: str, window_s: int) -> int:
    """Unix second at which the tumbling window holding ``occurred_at`` starts."""
    moment = datetime.fromisoformat(occurred_at.replace("Z", "+00:00")).timestamp()
    return int(math.floor(moment / window_s) * window_s)


def outcome_counter(event: dict[str, Any]) -> str | None:
    """The counter a feedback or correction event adds to (None: nothing to count)."""
    if event.get("type") == "correction":
        return "corrected"
    signal = event.get("signal")
    if signal == "rating":
        rating = event.get("rating")
        if not isinstance(rating, int):
            return None
        return "low_ratings" if rating <= 2 else "ratings"
    return signal if signal in ("thumbs_up", "thumbs_down", "accepted", "edited") else None


def observe(raw: bytes | None, window_s: int) -> Observation | None:
    """Read one topic record; None for anything the monitor does not count (imports,
    malformed JSON: the ingest agent dead-letters those, the monitor just skips them)."""
    try:
        event = json.loads(raw or b"")
        kind, task, when = event["type"], event["task"], event["occurred_at"]
        start = window_start(when, window_s)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    if kind == "inference":
        if event.get("origin") == "import" or not isinstance(event.get("event_id"), str):
            return None
        version = event.get("adapter_id") or BASE
        return Observation("answer", event["event_id"], task, "answers", start, version)
    counter = outcome_counter(event)
    if counter is None or not isinstance(event.get("inference_id"), str):
        return None
    return Observation("outcome", event["inference_id"], task, counter, start)


def window_key(task: str, version: str, start: int) -> str:
    return SEPARATOR.join((task, version, str(start)))


def split_key(key: str) -> tuple[str, str, int]:
    task, version, start = key.split(SEPARATOR)
    return task, version, int(start)


def add(counts: dict[str, int] | None, counter: str, times: int = 1) -> dict[str, int]:
    """A copy of ``counts`` with ``times`` more ``counter`` (``low_ratings`` are ratings too)."""
    updated = dict(counts or {})
    updated[counter] = updated.get(counter, 0) + times
    if counter == "low_ratings":
        updated["ratings"] = updated.get("ratings", 0) + times
    return updated


def live_counts_message(key: str, counts: dict[str, int], window_s: int) -> bytes:
    """The JSON published on ``flywheel.live_counts``: one window's totals so far (the
    newest message for a window replaces the older ones)."""
    task, version, start = split_key(key)
    return json.dumps(
        {
            "task": task,
            "adapter_id": None if version == BASE else version,
            "window_start": start,
            "window_s": window_s,
            "counts": counts,
        }
    ).encode()


class LiveWindows:
    """The monitor's state: the join of outcomes to answers, and each window's counts.

    ``versions`` maps an answer's id to its (task, version); ``waiting`` holds outcomes whose
    answer has not arrived yet; ``counts`` holds each window's counters; ``changed`` names
    the windows to publish next."""

    def __init__(self) -> None:
        self.versions: dict[str, tuple[str, str]] = {}
        self.waiting: dict[str, list[tuple[str, int]]] = {}
        self.counts: dict[str, dict[str, int]] = {}
        self.changed: set[str] = set()

    def apply(self, seen: Observation) -> None:
        if seen.kind == "answer":
            assert seen.version is not None
            self.versions[seen.inference_id] = (seen.task, seen.version)
            self._count(seen.task, seen.version, seen.counter, seen.window_start)
            for counter, start in self.waiting.pop(seen.inference_id, []):
                self._count(seen.task, seen.version, counter, start)
            return
        answered = self.versions.get(seen.inference_id)
        if answered is None:  # its answer is late: wait for it
            self.waiting.setdefault(seen.inference_id, []).append((seen.counter, seen.window_start))
        else:
            self._count(*answered, seen.counter, seen.window_start)

    def take_changed(self) -> list[tuple[str, dict[str, int]]]:
        """The windows changed since the last call, with their totals so far."""
        keys, self.changed = sorted(self.changed), set()
        return [(key, self.counts[key]) for key in keys]

    def _count(self, task: str, version: str, counter: str, start: int) -> None:
        key = window_key(task, version, start)
        self.counts[key] = add(self.counts.get(key), counter)
        self.changed.add(key)
