"""A durable on-disk spool: events that could not reach Kafka wait here, nothing is lost.

Segments are JSON-lines files named by creation time; appends are flushed and fsynced before
``append`` returns. Replay reads the oldest segment first and deletes a segment only after
every event in it was delivered. A torn last line from a crash is skipped with a warning.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from feedback.private_files import private_dir

log = logging.getLogger(__name__)


class Spool:
    def __init__(self, directory: Path, *, max_segment_events: int = 10_000) -> None:
        self.directory = directory
        self.max_segment_events = max_segment_events
        self._lock = threading.Lock()
        self._current: Path | None = None
        self._current_count = 0
        private_dir(directory)  # spooled events are production data: this user's only

    def append(self, records: list[tuple[str, bytes, bytes]]) -> None:
        """Persist (topic, key, value) records; returns once they are on disk."""
        if not records:
            return
        with self._lock:
            if self._current is None or self._current_count >= self.max_segment_events:
                self._current = self.directory / f"{time.time_ns():020d}.jsonl"
                self._current_count = 0
            lines = "".join(
                json.dumps({"topic": t, "key": k.decode(), "value": v.decode()}) + "\n"
                for t, k, v in records
            )
            with open(self._current, "a", encoding="utf-8") as handle:
                handle.write(lines)
                handle.flush()
                os.fsync(handle.fileno())
            self._current_count += len(records)

    def segments(self) -> list[Path]:
        return sorted(self.directory.glob("*.jsonl"))

    def __len__(self) -> int:
        return sum(1 for segment in self.segments() for _ in self._read(segment))

    def drain(self) -> Iterator[tuple[Path, list[tuple[str, bytes, bytes]]]]:
        """Yield (segment, records) oldest first; call ``delivered(segment)`` once sent.

        Only segments closed to appends are yielded: ones created by appends made during the
        replay wait for the next one, so a line written after its segment was read can never
        be deleted with it.
        """
        with self._lock:
            self._current = None  # new appends go to a fresh segment while we replay
            closed = self.segments()
        for segment in closed:
            yield segment, list(self._read(segment))

    def delivered(self, segment: Path) -> None:
        segment.unlink(missing_ok=True)

    def _read(self, segment: Path) -> Iterator[tuple[str, bytes, bytes]]:
        try:
            lines = segment.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return
        for number, line in enumerate(lines, start=1):
            try:
                record = json.loads(line)
                yield record["topic"], record["key"].encode(), record["value"].encode()
            except (ValueError, KeyError):
                log.warning("skipping a torn line %d in spool segment %s", number, segment.name)
