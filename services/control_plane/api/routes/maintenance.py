"""POST /v1/gc (operator) and POST /v1/backup (admin): housekeeping of the running service."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field, StringConstraints

from schemas.events import NO_NUL_PATTERN
from services.backup import BackupError
from services.control_plane.api.deps import Admin, Operator, State
from services.control_plane.maintenance import Maintenance
from services.control_plane.state import ControlPlaneState

router = APIRouter(tags=["maintenance"])


class Collect(BaseModel):
    dry_run: bool = Field(default=False, description="Report what would go; delete nothing.")


class Backup(BaseModel):
    directory: Annotated[
        str, StringConstraints(min_length=1, max_length=4096, pattern=NO_NUL_PATTERN)
    ] = Field(
        description="Absolute path, on the control plane's machine, of an existing empty "
        "directory outside FLYWHEEL_HOME, private to the control plane's user (mode 0700)."
    )


def _maintenance(state: ControlPlaneState) -> Maintenance:
    if state.maintenance is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "maintenance is not up yet")
    return state.maintenance


@router.post("/v1/gc", summary="Delete expired raw events and unneeded adapters (or list them)")
async def post_gc(body: Collect, state: State, who: Operator) -> dict[str, Any]:
    return await _maintenance(state).collect_garbage(actor=who.name, dry_run=body.dry_run)


@router.post("/v1/backup", summary="Copy the store, adapters and snapshots while running")
async def post_backup(body: Backup, state: State, who: Admin) -> dict[str, Any]:
    try:
        return await _maintenance(state).backup(Path(body.directory), actor=who.name)
    except BackupError as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from error
    except OSError as error:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"the backup into {body.directory} failed ({error.strerror or error}); remove what "
            "it wrote and choose a directory the control plane can write, with enough space",
        ) from error
