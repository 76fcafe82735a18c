"""A task's canary: its state, its latest live decision, and ending it by hand."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field

from schemas.events import TaskName
from services.control_plane.api.deps import Operator, State
from services.control_plane.api.routes.learning import _existing, _runner
from training.canaries import active_canary, canary_history
from training.registry import AdapterRefusedError, RegistryError

router = APIRouter(tags=["live guard"])


class EndCanary(BaseModel):
    outcome: Literal["promote", "rollback"] = Field(
        description="promote: the canary becomes the champion; rollback: it stops serving"
    )
    reason: str = Field(default="", max_length=2000)


@router.get("/v1/tasks/{name}/canary", summary="The running canary, its decision, live rates")
async def get_canary(name: TaskName, state: State, _who: Operator) -> dict[str, Any]:
    await _existing(state, name)
    guard = state.live_guard
    return {
        "task": name,
        "canary": await state.store.call(active_canary, name),
        "decision": guard.last_decisions.get(name) if guard else None,
        "history": await state.store.call(canary_history, name),
        "windows": guard.windows.series(name) if guard else [],
    }


@router.post("/v1/tasks/{name}/canary/end", summary="Promote or roll back the canary by hand")
async def post_end_canary(
    name: TaskName, body: EndCanary, state: State, who: Operator
) -> dict[str, Any]:
    await _existing(state, name)
    guard = state.live_guard
    evidence = guard.last_decisions.get(name, {}) if guard else {}
    try:
        return await _runner(state).end_canary(
            name,
            body.outcome,
            actor=who.name,
            reason=body.reason or f"ended by hand ({body.outcome})",
            evidence=evidence,
        )
    except AdapterRefusedError as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from error
    except RegistryError as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from error
