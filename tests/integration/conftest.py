"""A real control plane process (``flywheel up``) against the real bundled broker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.broker import EmbeddedBroker
from tests.processes import ControlPlaneProcess, InferenceServerProcess, create_token

__all__ = ["ControlPlaneProcess", "InferenceServerProcess", "create_token"]


@pytest.fixture
def control_plane(home: Path, broker: EmbeddedBroker) -> Iterator[ControlPlaneProcess]:
    plane = ControlPlaneProcess(home, broker.bootstrap)
    plane.start()
    yield plane
    if plane.process is not None and plane.process.poll() is None:
        plane.process.kill()
        plane.process.wait(10)


def stored(status: dict[str, Any], event_type: str) -> int:
    return int(status["events"][event_type]["stored"])


def rejected(status: dict[str, Any], event_type: str) -> int:
    return int(status["events"][event_type]["rejected"])


def dump(event: Any) -> str:
    return json.dumps(event)
