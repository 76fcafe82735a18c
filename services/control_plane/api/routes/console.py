"""The operator console's data (role operator): growth, quality, drift, audit; and the web UI,
a static page that calls this API with the token the person logs in with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import FileResponse

from feedback.console import audit_entries, drift, ground_truth_growth, quality_by_adapter
from schemas.events import TaskName
from services.control_plane.api.deps import Operator, State
from training.task_records import get_task

router = APIRouter(tags=["operator console"])
UI_DIR = Path(__file__).resolve().parents[2] / "ui"
UI_FILES = {"app.js": "text/javascript", "style.css": "text/css"}


async def _known(state: State, name: str) -> None:
    if await state.store.call(get_task, name) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no task named {name}")


@router.get("/v1/tasks/{name}/growth", summary="Ground truth over time, by source")
async def get_growth(name: TaskName, state: State, _who: Operator) -> dict[str, Any]:
    await _known(state, name)
    return await state.store.call(ground_truth_growth, name)


@router.get("/v1/tasks/{name}/quality", summary="Each candidate's gate metric, in order")
async def get_quality(name: TaskName, state: State, _who: Operator) -> list[dict[str, Any]]:
    await _known(state, name)
    return await state.store.call(quality_by_adapter, name)


@router.get("/v1/tasks/{name}/drift", summary="Correction and negative-feedback rates per adapter")
async def get_drift(name: TaskName, state: State, _who: Operator) -> dict[str, Any]:
    await _known(state, name)
    return await state.store.call(drift, name)


@router.get("/v1/audit", summary="Who did what, newest first")
async def get_audit(
    state: State,
    _who: Operator,
    task: TaskName | None = None,
    limit: int = Query(default=200, ge=1, le=5000),
) -> list[dict[str, Any]]:
    return await state.store.call(audit_entries, limit=limit, task=task)


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    """The console's page: a shell with no data; everything it shows needs a token."""
    return FileResponse(UI_DIR / "index.html", media_type="text/html")


@router.get("/ui/{name}", include_in_schema=False)
async def asset(name: str) -> FileResponse:
    if name not in UI_FILES:  # a fixed list: no path can reach outside the UI directory
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such file")
    return FileResponse(UI_DIR / name, media_type=UI_FILES[name])
