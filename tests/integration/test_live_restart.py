"""Live state across a restart of the whole ``flywheel up``, bundled broker included: the
broker starts empty, so the monitor has nothing to replay, and the control plane rebuilds
the windows it decides on from the store. Counts before the restart equal counts after it,
and traffic after the restart adds to them once (no event counted twice)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from services.control_plane.replay_start import oldest_event_time
from tests.integration.learning_helpers import define_task, import_examples, import_more
from tests.integration.live_helpers import live_env, traffic
from tests.processes import ControlPlaneProcess, free_port

pytestmark = pytest.mark.integration
WINDOW_S = 5
POLICY = {"fraction": 0.5, "min_events": 1000, "max_duration_s": 3600}


class BundledPlane(ControlPlaneProcess):
    """``flywheel up`` with no Kafka configured: it runs its own bundled (in-memory) broker,
    which a restart of the control plane restarts empty."""

    def __init__(self, home: Path, tiny_model_dir: Path) -> None:
        port = free_port()
        super().__init__(
            home,
            f"127.0.0.1:{port}",
            extra_env=live_env(tiny_model_dir, WINDOW_S, FLYWHEEL_EMBEDDED_BROKER_PORT=str(port)),
        )

    @property
    def env(self) -> dict[str, str]:
        env = super().env
        env.pop("FLYWHEEL_KAFKA_BOOTSTRAP")
        return env


def _live(plane: ControlPlaneProcess) -> dict[str, Any]:
    return plane.get("/v1/tasks/money/canary")


def _judged(live: dict[str, Any]) -> tuple[int, int] | None:
    decision = live["decision"]
    return decision and (decision["candidate"]["n"], decision["reference"]["n"])


def _totals(live: dict[str, Any]) -> dict[str | None, int]:
    totals: dict[str | None, int] = {}
    for window in live["windows"]:
        totals[window["adapter_id"]] = totals.get(window["adapter_id"], 0) + window["answers"]
    return totals


def test_counts_before_a_full_restart_equal_counts_after_it(
    home: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    plane = BundledPlane(home, tiny_model_dir)
    plane.start()
    try:
        define_task(plane, tmp_path, "money")  # promoted at once: a live champion
        import_examples(plane, tmp_path, "money")
        assert plane.cli("cycle", "run", "money", "--wait").returncode == 0
        champion = plane.get("/v1/tasks/money")["champion"]
        traffic(plane.bootstrap, "money", champion, answers=60, thumbs_down=6)  # drift windows
        define_task(plane, tmp_path, "money", gate={"canary": POLICY}, max_steps=6)
        import_more(plane, tmp_path, "money", stored=60)
        assert plane.cli("cycle", "run", "money", "--wait").returncode == 0
        canary = _live(plane)["canary"]["adapter_id"]
        traffic(plane.bootstrap, "money", canary, answers=40, thumbs_down=12)
        time.sleep(WINDOW_S - time.time() % WINDOW_S + 0.3)  # the champion's next window:
        traffic(plane.bootstrap, "money", champion, answers=60, thumbs_down=36)  # it drifted
        before = plane.wait_until(
            lambda: _live(plane),
            lambda s: _judged(s) == (40, 60) and _totals(s) == {champion: 120, canary: 40},
            60,
        )
        plane.wait_until(plane.status, lambda s: len(s["live_alerts"]) == 1, 30)

        assert plane.stop() == 0
        plane.start()
        assert asyncio.run(oldest_event_time(plane.bootstrap)) is None  # nothing to replay
        after = plane.wait_until(lambda: _live(plane), lambda s: _judged(s) is not None, 30)
        assert after["windows"] == before["windows"]
        assert _judged(after) == (40, 60)
        assert after["trail"] == before["trail"]
        time.sleep(2)  # a few checks of the rebuilt windows: the same window is not alerted again
        assert len(plane.status()["live_alerts"]) == 1

        traffic(plane.bootstrap, "money", canary, answers=10, thumbs_down=1)
        later = plane.wait_until(lambda: _live(plane), lambda s: _judged(s) == (50, 60), 60)
        assert _totals(later) == {champion: 120, canary: 50}
        assert "live windows rebuilt from the store" in plane.log_path.read_text()
    finally:
        plane.stop()
