"""Start-up with a bad setting, as an operator meets it: `flywheel up` / `flywheel status`
exit with an error that names the environment variable to fix, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import free_port

pytestmark = pytest.mark.integration


def flywheel(home: Path, command: str, **variables: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FLYWHEEL_")}
    environment.update(
        FLYWHEEL_HOME=str(home),
        FLYWHEEL_KAFKA_BOOTSTRAP="127.0.0.1:9",  # never reached: start-up stops before Kafka
        FLYWHEEL_API_PORT=str(free_port()),
    )
    environment.update(variables)
    return subprocess.run(
        [sys.executable, "-m", "services.cli.main", command],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("variable", "value", "explanation"),
    [
        ("FLYWHEEL_API_PORT", "eighty", "valid integer"),
        ("FLYWHEEL_REVIEW_LOW_CONFIDENCE", "nan", "finite number"),
        ("FLYWHEEL_AUTH_FAILURE_WINDOW_S", "inf", "finite number"),
        ("FLYWHEEL_CONSUMER_GROUP", "", "at least 1 character"),
        ("FLYWHEEL_TRUSTED_PROXIES", "my-proxy", "not an IP address or network"),
    ],
)
@pytest.mark.parametrize("command", ["up", "status"])
def test_an_invalid_setting_stops_start_up_naming_its_variable(
    tmp_path, command, variable, value, explanation
):
    result = flywheel(tmp_path, command, **{variable: value})
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("invalid configuration: "), lines
    assert f"{variable}={value!r}: " in lines[0] and explanation in lines[0]


@pytest.mark.parametrize("host", ["not..a.host", "192.0.2.1"])
def test_an_api_host_that_is_no_address_of_this_machine_is_named(tmp_path, host):
    result = flywheel(tmp_path, "up", FLYWHEEL_API_HOST=host)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    error = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(error) == 1 and "FLYWHEEL_API_HOST" in error[0], result.stderr
    assert "is taken" not in result.stderr
