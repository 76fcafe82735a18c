"""A real control plane process (``flywheel up``) against the real bundled broker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.broker import EmbeddedBroker
from tests.processes import (
    ControlPlaneProcess,
    InferenceServerProcess,
    create_token,
    dump,
    rejected,
    running,
    stored,
)

__all__ = [
    "ControlPlaneProcess",
    "InferenceServerProcess",
    "create_token",
    "dump",
    "rejected",
    "stored",
]


@pytest.fixture
def learning_plane(
    home: Path, broker: EmbeddedBroker, tiny_model_dir: Path
) -> Iterator[ControlPlaneProcess]:
    """``flywheel up`` on the tiny model with a scheduler that looks every second; killed at
    the end if a test left it running."""
    plane = ControlPlaneProcess(
        home,
        broker.bootstrap,
        extra_env={
            "FLYWHEEL_BASE_MODEL": str(tiny_model_dir),
            "FLYWHEEL_SCHEDULER_INTERVAL_S": "1",
        },
    )
    with running(plane):
        yield plane
