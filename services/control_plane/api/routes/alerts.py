"""POST /v1/alerts (role app): inference servers tell operators what they refused to serve.
Each alert lands in the audit log, which the console shows."""

from __future__ import annotations

import logging
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from schemas.events import TaskName
from services.control_plane.api.deps import AppRole, State
from training.registry import audit

router = APIRouter(tags=["alerts"])
log = logging.getLogger(__name__)


class Alert(BaseModel):
    kind: Literal["adapter_refused"]
    task: TaskName
    adapter_id: str | None = Field(default=None, max_length=128)
    reason: str = Field(max_length=2000)
    server: str = Field(default="", max_length=200)


@router.post("/v1/alerts", status_code=202, summary="An inference server reports a problem")
async def post_alert(body: Alert, state: State, who: AppRole) -> dict[str, str]:
    log.warning(
        "alert from %s (%s): %s %s of %s: %s",
        who.name,
        body.server,
        body.kind,
        body.adapter_id,
        body.task,
        body.reason,
    )
    await state.store.call(
        audit,
        actor=who.name,
        action=f"alert:{body.kind}",
        task=body.task,
        details=body.model_dump(exclude={"kind", "task"}),
    )
    return {"status": "recorded"}
