"""Training jobs handed to other machines through the shared store (FLYWHEEL_HOME mounted at
the same path everywhere): a directory per cycle holds ``job.json``; the control plane
marks it ``queued``; a worker (``flywheel train --watch``) claims it by an atomic rename,
appends progress lines to ``progress.jsonl``, rewrites ``heartbeat`` while the job runs, and
ends with ``result.json`` (written last by the cycle worker) or ``failed`` (with the reason).
Nothing is registered until the control plane reads the result, so a worker that dies
leaves nothing half-registered."""

from __future__ import annotations

import os
import socket
from pathlib import Path

QUEUED, CLAIMED, PROGRESS, RESULT, FAILED, HEARTBEAT = (
    "queued",
    "claimed",
    "progress.jsonl",
    "result.json",
    "failed",
    "heartbeat",
)
HEARTBEAT_S = 2.0
"""How often a worker rewrites ``heartbeat`` while its job's process is alive: a job can
be quiet for long (a model load, a slow first step on a busy machine) without being dead."""


def enqueue(work: Path) -> None:
    (work / QUEUED).write_text("")


def claim(work: Path) -> bool:
    """Take a queued job; exactly one of several racing workers gets True."""
    try:
        os.rename(work / QUEUED, work / CLAIMED)
    except FileNotFoundError:
        return False
    (work / CLAIMED).write_text(f"{socket.gethostname()} pid {os.getpid()}\n")
    return True


def queued_jobs(cycles_dir: Path) -> list[Path]:
    """Queued job directories, oldest first."""
    if not cycles_dir.is_dir():
        return []
    found = [p.parent for p in cycles_dir.glob(f"*/{QUEUED}")]
    return sorted(found, key=lambda p: (p / QUEUED).stat().st_mtime if (p / QUEUED).exists() else 0)
