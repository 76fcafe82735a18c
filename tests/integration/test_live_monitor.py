"""The faust live monitor against the real bundled broker: counts, the late join, a restart,
and no listening socket."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from schemas.topics import FEEDBACK, INFERENCE
from services.broker import EmbeddedBroker
from services.live_monitor.process import LiveMonitorProcess
from tests.integration.live_helpers import answer, feedback, read_live_counts, send, traffic
from tests.processes import ControlPlaneProcess


def _monitor(broker: EmbeddedBroker, home: Path) -> LiveMonitorProcess:
    (home / "run").mkdir(exist_ok=True)
    monitor = LiveMonitorProcess(bootstrap=broker.bootstrap, log_file=home / "monitor.log")
    monitor.start()
    return monitor


def test_counts_survive_a_restart_and_late_feedback_is_joined(
    broker: EmbeddedBroker, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLYWHEEL_HOME", str(home))
    monkeypatch.setenv("FLYWHEEL_PARTITIONS", "2")
    monitor = _monitor(broker, home)
    try:
        # feedback first, its answer after: joined by inference id when the answer comes
        send(broker.bootstrap, FEEDBACK, [feedback("t", "late-1", "thumbs_down")])
        traffic(broker.bootstrap, "t", "cand", answers=10, thumbs_down=4)
        send(broker.bootstrap, INFERENCE, [answer("t", "cand", inference_id="late-1")])
        first = read_live_counts(
            broker.bootstrap, lambda t: t.get(("t", "cand"), {}).get("answers") == 11
        )
        assert first[("t", "cand")] == {"answers": 11, "thumbs_down": 5, "thumbs_up": 6}
        _no_listening_socket(monitor)

        monitor.stop()
        traffic(broker.bootstrap, "t", None, answers=3, thumbs_down=1)  # while it is down
        monitor.start()
        traffic(broker.bootstrap, "t", "cand", answers=2, thumbs_down=2)
        after = read_live_counts(
            broker.bootstrap,
            lambda t: t.get(("t", "cand"), {}).get("answers") == 13 and ("t", None) in t,
        )
        assert after[("t", "cand")] == {"answers": 13, "thumbs_down": 7, "thumbs_up": 6}
        assert after[("t", None)] == {"answers": 3, "thumbs_down": 1, "thumbs_up": 2}
    finally:
        monitor.stop()


def _no_listening_socket(monitor: LiveMonitorProcess) -> None:
    assert monitor.process is not None
    process = psutil.Process(monitor.process.pid)
    listening = [c for c in process.net_connections(kind="inet") if c.status == "LISTEN"]
    assert listening == []


def test_flywheel_up_runs_the_monitor(control_plane: ControlPlaneProcess) -> None:
    assert control_plane.process is not None
    children = psutil.Process(control_plane.process.pid).children()
    assert any("services.live_monitor" in " ".join(c.cmdline()) for c in children)
    traffic(control_plane.bootstrap, "t", "v1", answers=4, thumbs_down=1)
    totals = read_live_counts(
        control_plane.bootstrap, lambda t: t.get(("t", "v1"), {}).get("thumbs_up") == 3
    )
    assert totals[("t", "v1")] == {"answers": 4, "thumbs_down": 1, "thumbs_up": 3}
    control_plane.stop()
    assert not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children)


def test_the_monitor_does_not_outlive_a_killed_control_plane(
    control_plane: ControlPlaneProcess,
) -> None:
    assert control_plane.process is not None
    (monitor,) = [
        c
        for c in psutil.Process(control_plane.process.pid).children()
        if "services.live_monitor" in " ".join(c.cmdline())
    ]
    control_plane.kill()  # SIGKILL: no chance to stop its children
    gone, alive = psutil.wait_procs([monitor], timeout=20)
    assert gone and not alive
