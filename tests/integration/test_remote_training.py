"""Training on another machine: the control plane queues the job in the shared store and
`flywheel train --watch` (here a second process on the same mount) runs it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from tests.integration.learning_helpers import define_task, import_examples
from tests.processes import ControlPlaneProcess, running

pytestmark = pytest.mark.integration


@pytest.fixture
def plane(home, broker, tiny_model_dir):
    plane = ControlPlaneProcess(
        home,
        broker.bootstrap,
        extra_env={
            "FLYWHEEL_BASE_MODEL": str(tiny_model_dir),
            "FLYWHEEL_TRAINING": "remote",
            "FLYWHEEL_CYCLE_LEASE_S": "20",  # a loaded CI machine imports torch slowly
        },
    )
    with running(plane, graceful=True):
        yield plane


def start_worker(plane: ControlPlaneProcess) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "services.cli.main", "train", "--watch"],
        env=plane.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def test_a_queued_cycle_runs_on_a_training_worker_and_is_promoted(plane, tmp_path):
    define_task(plane, tmp_path, "money")
    import_examples(plane, tmp_path, "money")
    started = plane.post("/v1/tasks/money/cycles", {}).json()["cycle_id"]
    time.sleep(2)
    waiting = plane.get(f"/v1/cycles/{started}")
    assert waiting["state"] == "training" and waiting["progress"]["phase"] == "queued"
    worker = start_worker(plane)
    try:
        cycle = plane.wait_until(
            lambda: plane.get(f"/v1/cycles/{started}"),
            lambda c: c["state"] in ("decided", "failed"),
        )
        assert cycle["verdict"] == "promote", (cycle.get("error"), cycle.get("decision"))
        assert plane.get("/v1/tasks/money")["champion"] == cycle["adapter_id"]
        assert (plane.home / "cycles" / started / "claimed").exists()
    finally:
        worker.terminate()
        worker.wait(30)


def test_a_worker_killed_mid_job_fails_the_cycle_and_registers_nothing(plane, tmp_path):
    # About 800 steps: still training when it is killed.
    define_task(plane, tmp_path, "money", max_steps=100_000, epochs=20)
    import_examples(plane, tmp_path, "money", count=400)
    worker = start_worker(plane)
    cycle_id = plane.post("/v1/tasks/money/cycles", {}).json()["cycle_id"]
    plane.wait_until(
        lambda: plane.get(f"/v1/cycles/{cycle_id}"),
        lambda c: (c.get("progress") or {}).get("step", 0) >= 2,
    )
    import psutil

    for child in psutil.Process(worker.pid).children(recursive=True):
        child.send_signal(signal.SIGKILL)
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)
    failed = plane.wait_until(
        lambda: plane.get(f"/v1/cycles/{cycle_id}"), lambda c: c["state"] == "failed", timeout_s=90
    )
    assert "went silent" in failed["error"]
    assert plane.get("/v1/adapters?task=money") == []
