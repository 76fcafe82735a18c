"""Shared by the benchmarks: peak RSS sampling and the one-JSON-object last line."""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

import psutil


class PeakRss:
    """Samples this process's (and its children's) RSS in a thread; ``peak_mb`` since reset."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self.peak = 0
        threading.Thread(target=self._sample, daemon=True).start()

    def _rss(self) -> int:
        total = self._process.memory_info().rss
        for child in self._process.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                continue
        return total

    def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, self._rss())
            time.sleep(0.1)

    def reset(self) -> None:
        self.peak = self._rss()

    @property
    def peak_mb(self) -> float:
        return round(self.peak / 2**20, 1)


def report(results: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(results) + "\n")
