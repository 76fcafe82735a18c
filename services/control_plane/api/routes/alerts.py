"""POST /v1/alerts (role server): inference servers tell operators what they refused to serve.
Each alert lands in the audit log, which the console shows, so only an inference server's own
token may send one, and its text is bounded and one line (it is also logged)."""

from __future__ import annotations

import logging
import re
from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints

from schemas.events import TaskName
from services.control_plane.api.deps import State, require_role
from services.control_plane.tokens import Principal
from training.registry import audit

router = APIRouter(tags=["alerts"])
log = logging.getLogger(__name__)

ServerRole = Annotated[Principal, Depends(require_role("server"))]


_PRINTABLE = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"  # no control characters but whitespace


def _one_line(value: str) -> str:
    """Fold whitespace runs (a library's multi-line error, say) into one space: one alert,
    one log line."""
    folded = re.sub(r"\s+", " ", value).strip()
    if not folded:
        raise ValueError("must not be blank")
    return folded


class Alert(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["adapter_refused"]
    task: TaskName
    adapter_id: (
        Annotated[
            str, StringConstraints(max_length=128, pattern=_PRINTABLE), AfterValidator(_one_line)
        ]
        | None
    ) = None
    reason: Annotated[
        str, StringConstraints(max_length=2000, pattern=_PRINTABLE), AfterValidator(_one_line)
    ]
    server: (
        Annotated[
            str, StringConstraints(max_length=200, pattern=_PRINTABLE), AfterValidator(_one_line)
        ]
        | None
    ) = None


@router.post("/v1/alerts", status_code=202, summary="An inference server reports a problem")
async def post_alert(body: Alert, state: State, who: ServerRole) -> dict[str, str]:
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
