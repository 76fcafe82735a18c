"""Which adapter serves each task, learned from the control plane, then from flywheel.promotions.

A promotion message applies only when it is newer than what the book holds for its task, so
the start-up snapshot and a replay of the whole topic agree, whatever order they arrive in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True, slots=True)
class Champion:
    adapter_id: str | None  # None: the base model
    since: datetime


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

    def apply(self, task: str, adapter_id: str | None, since: datetime) -> bool:
        """Record the task's champion if this is news; True when it changed the book."""
        if not self.is_newer(task, since):
            return False
        self._by_task[task] = Champion(adapter_id, since)
        return True

    def adapters(self) -> set[str | None]:
        return {c.adapter_id for c in self._by_task.values()}

    def as_dict(self) -> dict[str, str | None]:
        return {task: c.adapter_id for task, c in sorted(self._by_task.items())}
