"""The control plane's HTTP API."""

from __future__ import annotations

from fastapi import FastAPI

from services.control_plane.api.routes import (
    alerts,
    canary,
    console,
    erasure,
    events,
    learning,
    maintenance,
    review,
    status,
    tokens,
)
from services.control_plane.state import ControlPlaneState


def create_app(state: ControlPlaneState) -> FastAPI:
    app = FastAPI(title="Flywheel control plane", version="0.1.0")
    app.state.control_plane = state
    app.include_router(status.router)
    app.include_router(events.router)
    app.include_router(tokens.router)
    app.include_router(learning.router)
    app.include_router(review.router)
    app.include_router(console.router)
    app.include_router(alerts.router)
    app.include_router(maintenance.router)
    app.include_router(erasure.router)
    app.include_router(canary.router)
    return app
