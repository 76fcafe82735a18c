"""Shared by the benchmarks: peak RSS sampling and the one-JSON-object last line."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
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


# A label task on real emails whose gate promotes whatever its cycle trains: the serving and
# soak benchmarks need a champion, not a good one. The cycle itself is the default recipe.
QUICK_SPAM_TASK = {
    "name": "spam",
    "kind": "label",
    "labels": ["spam", "ham"],
    "instruction": "Decide whether this email is spam or ham (a legitimate email).",
    "triggers": {"min_new_examples": 10_000_000},
    "gate": {"mode": "auto", "min_eval_size": 5, "min_delta": -1.0, "regression_tolerance": 1.0},
    "training": {"eval_fraction": 0.15},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def temporary_home(prefix: str) -> Path:
    """A fresh FLYWHEEL_HOME that reuses the base model converted under ./.flywheel."""
    from training.checkpoints import resolve_base_model

    home = Path(tempfile.mkdtemp(prefix=prefix))
    base = resolve_base_model(None, Path(os.environ.get("FLYWHEEL_HOME", ".flywheel")) / "models")
    (home / "models").mkdir(parents=True)
    (home / "models" / base.name).symlink_to(base.resolve())
    return home


def spawn(command: str, env: dict[str, str], home: Path) -> subprocess.Popen[bytes]:
    """Run ``flywheel COMMAND`` as an operator would, its output in HOME/COMMAND.log; it ends
    with the benchmark, however the benchmark ends."""
    from services.child_processes import ends_with_parent

    return subprocess.Popen(
        [sys.executable, "-m", "services.cli.main", command],
        env=env,
        stdout=open(home / f"{command}.log", "wb"),
        stderr=subprocess.STDOUT,
        preexec_fn=ends_with_parent(),
    )


def wait_healthy(url: str, home: Path, timeout_s: float = 120) -> None:
    """Until ``url``/healthz answers status ok; exits with the logs' place otherwise."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).json().get("status") == "ok":
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not come up; logs in {home}")
