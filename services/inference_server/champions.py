"""Which adapter serves each task, learned from the control plane, then from flywheel.promotions.

A promotion message applies only when it is newer than what the book holds for its task, so
the start-up snapshot and a replay of the whole topic agree, whatever order they arrive in.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True, slots=True)
class Champion:
    adapter_id: str | None  # None: the base model
    since: datetime
    canary: str | None = None
    """An adapter on trial (``training.canaries``); None: no canary."""
    fraction: float = 0.0
    """Share of the task's callers the canary serves."""


def caller_share(task: str, caller_key: str | None) -> float:
    """Where a caller falls in [0, 1): a stable hash of task and key, so one caller keeps
    one version for the whole canary; a request without a key falls at random."""
    if caller_key is None:
        return random.random()
    digest = hashlib.sha256(f"{task}\x00{caller_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def parse_time(value: str | None) -> datetime:
    """An ISO time as an aware UTC datetime; missing or naive values are read as UTC."""
    if not value:
        return datetime.min.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class ChampionBook:
    def __init__(self) -> None:
        self._by_task: dict[str, Champion] = {}

    def current(self, task: str) -> str | None:
        found = self._by_task.get(task)
        return found.adapter_id if found else None

    def is_newer(self, task: str, since: datetime) -> bool:
        found = self._by_task.get(task)
        return found is None or since > found.since

    def apply(
        self,
        task: str,
        adapter_id: str | None,
        since: datetime,
        canary: dict | bool | None = False,
    ) -> bool:
        """Record the task's champion if this is news; True when it changed the book.
        ``canary``: ``{"adapter_id", "fraction"}``, None (no canary), or False (a message
        from before canaries existed: keep the task's canary as it is)."""
        if not self.is_newer(task, since):
            return False
        kept = self._by_task.get(task)
        if canary is False:
            name, fraction = (kept.canary, kept.fraction) if kept else (None, 0.0)
        elif canary:
            name, fraction = canary["adapter_id"], float(canary["fraction"])
        else:
            name, fraction = None, 0.0
        self._by_task[task] = Champion(adapter_id, since, name, fraction)
        return True

    def route(self, task: str, caller_key: str | None) -> str | None:
        """The version that answers this caller: the canary for its fraction of callers,
        the champion for the rest."""
        found = self._by_task.get(task)
        if found is None:
            return None
        if found.canary is not None and caller_share(task, caller_key) < found.fraction:
            return found.canary
        return found.adapter_id

    def canaries(self) -> dict[str, dict]:
        return {
            task: {"adapter_id": c.canary, "fraction": c.fraction}
            for task, c in sorted(self._by_task.items())
            if c.canary is not None
        }

    def adapters(self) -> set[str | None]:
        return {c.adapter_id for c in self._by_task.values()} | {
            c.canary for c in self._by_task.values() if c.canary is not None
        }

    def as_dict(self) -> dict[str, str | None]:
        return {task: c.adapter_id for task, c in sorted(self._by_task.items())}
