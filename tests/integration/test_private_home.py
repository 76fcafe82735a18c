"""A real ``flywheel up`` keeps FLYWHEEL_HOME to its user: the home is 0700 and the store,
its WAL, the logs and the run files are 0600, even under a login umask (022) and in a home
first made world-readable; a home that cannot be created is one line, not a traceback."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import ControlPlaneProcess

pytestmark = pytest.mark.integration


def readable_by_others(home: Path, skip: set[Path]) -> list[str]:
    """Everything under ``home`` another local user could read or enter, with its mode."""
    found = []
    for path in [home, *home.rglob("*")]:
        if path not in skip and stat.S_IMODE(path.lstat().st_mode) & 0o077:
            found.append(f"{path.relative_to(home)} {stat.S_IMODE(path.lstat().st_mode):04o}")
    return found


def test_flywheel_up_keeps_the_store_and_everything_it_writes_private(home, broker):
    home.chmod(0o755)  # as `mkdir` under a login umask leaves it
    previous = os.umask(0o022)  # the child inherits the usual login umask
    plane = ControlPlaneProcess(home, broker.bootstrap)
    try:
        plane.start()
    finally:
        os.umask(previous)
    try:
        response = plane.post("/v1/tokens", {"role": "app", "name": "writes-the-store"})
        assert response.status_code == 200, response.text
        assert (home / "flywheel.duckdb").exists() and (home / "logs" / "flywheel.log").exists()
        assert readable_by_others(home, skip={plane.log_path}) == []
    finally:
        assert plane.stop() == 0
    assert readable_by_others(home, skip={plane.log_path}) == []
    assert stat.S_IMODE((home / "flywheel.duckdb").stat().st_mode) == 0o600


@pytest.mark.parametrize("command", [["up"], ["serve"], ["train"]])
def test_a_home_that_cannot_be_created_is_one_line_naming_flywheel_home(command):
    env = {
        **os.environ,
        "FLYWHEEL_HOME": "/proc/flywheel",
        "COLUMNS": "60",
    }  # a narrow terminal must not break the line
    result = subprocess.run(
        [sys.executable, "-m", "services.cli.main", *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "FLYWHEEL_HOME=/proc/flywheel cannot be created" in lines[0], (
        result.stderr
    )
