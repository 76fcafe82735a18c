"""``flywheel train``: run training jobs on this machine (a GPU node, say) for a control plane
elsewhere, through the shared store (see training/job_queue.py)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from services.child_processes import ends_with_parent
from training import job_queue


def run_job(work: Path) -> bool:
    """Run one claimed job in a child process; True when it left a result."""
    with (
        open(work / job_queue.PROGRESS, "ab") as progress,
        open(work / "worker.log", "ab") as worker_log,
    ):
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "training.cycle_worker",
                str(work / "job.json"),
                str(work / job_queue.RESULT),
            ],
            stdout=progress,
            stderr=worker_log,
            # the control plane gives up on a job whose heartbeat stopped: no orphan trains on
            preexec_fn=ends_with_parent(signal.SIGKILL),
        )
        beat = 0
        while child.poll() is None:  # alive: say so, however quiet the job is
            beat += 1
            (work / job_queue.HEARTBEAT).write_text(f"{beat}\n")
            try:
                child.wait(job_queue.HEARTBEAT_S)
            except subprocess.TimeoutExpired:
                continue
        code = child.returncode
    if code == 0 and (work / job_queue.RESULT).exists():
        return True
    tail = (work / "worker.log").read_text(errors="replace").strip().splitlines()[-5:]
    (work / job_queue.FAILED).write_text(
        f"exit code {code} on {socket.gethostname()}; last lines of {work}/worker.log:\n"
        + "\n".join(tail)
    )
    return False


def watch(
    cycles_dir: Path,
    *,
    once: bool = False,
    poll_s: float = 1.0,
    report: Callable[[str], None] = print,
) -> int:
    """Claim and run queued jobs (forever, or until the queue is empty with ``once``);
    returns how many ran."""
    ran = 0
    while True:
        for work in job_queue.queued_jobs(cycles_dir):
            if not job_queue.claim(work):
                continue  # another worker was faster
            report(f"training {work.name}")
            ok = run_job(work)
            ran += 1
            report(f"{work.name}: {'done' if ok else 'failed, see ' + str(work / 'worker.log')}")
        if once:
            return ran
        time.sleep(poll_s)
