"""Shared fixtures: a real bundled broker on a free loopback port, a fresh FLYWHEEL_HOME."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.broker import EmbeddedBroker
from services.topics import ensure_topics


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


from tests.model_fixtures import tiny_model_dir  # noqa: E402,F401  (a session fixture)
