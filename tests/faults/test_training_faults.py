"""A training process killed mid-cycle leaves nothing half-registered; the next cycle runs."""

from __future__ import annotations

import signal

import psutil
import pytest

from tests.integration.learning_helpers import define_task, import_examples
from tests.processes import ControlPlaneProcess, running

pytestmark = pytest.mark.integration


@pytest.fixture
def plane(model_plane):
    return model_plane


def training_workers(plane: ControlPlaneProcess) -> list[psutil.Process]:
    assert plane.process is not None
    return [
        p
        for p in psutil.Process(plane.process.pid).children(recursive=True)
        if "training.cycle_worker" in " ".join(p.cmdline())
    ]


def test_killed_training_leaves_nothing_half_registered_and_the_next_cycle_runs(plane, tmp_path):
    # About 800 steps: still training when it is killed.
    define_task(plane, tmp_path, "crashy", max_steps=100_000, epochs=20)
    import_examples(plane, tmp_path, "crashy", count=400)
    started = plane.post("/v1/tasks/crashy/cycles", {})
    assert started.status_code == 202
    cycle_id = started.json()["cycle_id"]
    plane.wait_until(
        lambda: plane.get(f"/v1/cycles/{cycle_id}"),
        lambda c: (c.get("progress") or {}).get("step", 0) >= 2,
    )
    assert plane.post("/v1/tasks/crashy/cycles", {}).status_code == 409  # one at a time
    workers = training_workers(plane)
    assert len(workers) == 1
    workers[0].send_signal(signal.SIGKILL)
    failed = plane.wait_until(
        lambda: plane.get(f"/v1/cycles/{cycle_id}"), lambda c: c["state"] == "failed"
    )
    assert "exited with code" in failed["error"]
    assert plane.get("/v1/adapters?task=crashy") == []
    assert not [p for p in (plane.home / "adapters").glob("*") if not p.name.startswith(".")]

    define_task(plane, tmp_path, "crashy", max_steps=3)
    assert plane.cli("cycle", "run", "crashy", "--wait").returncode == 0
    assert len(plane.get("/v1/adapters?task=crashy")) == 1


def test_a_cycle_past_its_time_limit_fails_saying_which_setting_stopped_it(
    home, broker, tiny_model_dir, tmp_path
):
    limited = ControlPlaneProcess(
        home,
        broker.bootstrap,
        extra_env={"FLYWHEEL_BASE_MODEL": str(tiny_model_dir), "FLYWHEEL_CYCLE_TIMEOUT_S": "3"},
    )
    with running(limited):
        define_task(limited, tmp_path, "slow", max_steps=100_000, epochs=20)
        import_examples(limited, tmp_path, "slow", count=100)
        run = limited.cli("cycle", "run", "slow", "--wait")
        assert run.returncode != 0
        assert "FLYWHEEL_CYCLE_TIMEOUT_S" in run.stdout, run.stdout + run.stderr
        failed = limited.get("/v1/cycles?task=slow")[0]
        assert failed["state"] == "failed"
        assert "FLYWHEEL_CYCLE_TIMEOUT_S (3 s)" in failed["error"], failed
        assert "FLYWHEEL_CYCLE_TIMEOUT_S" in limited.cli("cycle", "show", failed["cycle_id"]).stdout
        assert limited.get("/v1/adapters?task=slow") == []
        assert training_workers(limited) == []  # killed, not left training


@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
def test_a_control_plane_stopped_mid_cycle_leaves_no_process_behind(
    stop, home, tiny_model_dir, tmp_path
):
    """``flywheel up`` stopped while a cycle trains, by SIGTERM (a service manager) or by
    SIGKILL (``kill -9``, the OOM killer, which gives it no chance to stop its children):
    the training worker and the bundled broker end with it, so a restart on the same ports
    works, no orphaned worker trains for nobody, the interrupted cycle is marked failed and
    a new one runs."""
    plane = ControlPlaneProcess(home, None, extra_env={"FLYWHEEL_BASE_MODEL": str(tiny_model_dir)})
    with running(plane):
        define_task(plane, tmp_path, "stopped", max_steps=100_000, epochs=20)
        import_examples(plane, tmp_path, "stopped", count=200)
        cycle_id = plane.post("/v1/tasks/stopped/cycles", {}).json()["cycle_id"]
        plane.wait_until(
            lambda: plane.get(f"/v1/cycles/{cycle_id}"),
            lambda c: (c.get("progress") or {}).get("step", 0) >= 2,
        )
        assert plane.process is not None
        children = psutil.Process(plane.process.pid).children(recursive=True)
        assert len(training_workers(plane)) == 1
        assert any("broker" in " ".join(p.cmdline()) for p in children)

        if stop == "sigterm":
            assert plane.stop() == 0
        else:
            plane.kill()
        _gone, alive = psutil.wait_procs(children, timeout=30)
        assert alive == [], [" ".join(p.cmdline()) for p in alive]

    with running(plane, graceful=True):  # the same ports: nothing holds them
        assert plane.get(f"/v1/cycles/{cycle_id}")["state"] == "failed"
        define_task(plane, tmp_path, "stopped", max_steps=3)
        assert plane.cli("cycle", "run", "stopped", "--wait").returncode == 0
