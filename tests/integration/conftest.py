"""A real control plane process (``flywheel up``) against the real bundled broker."""

from __future__ import annotations

from tests.processes import (
    ControlPlaneProcess,
    InferenceServerProcess,
    create_token,
    dump,
    rejected,
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
