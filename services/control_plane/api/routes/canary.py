"""A task's canary: its state, its latest live decision, the path of its live comparison,
and ending it by hand; the newest drift alerts (the console's overview shows them)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, Field

from schemas.events import TaskName
from schemas.tasks import CanaryPolicy
from services.control_plane.api.deps import Operator, State
from services.control_plane.api.routes.learning import _existing, _runner
from services.control_plane.live_guard import LiveGuard
from training.canaries import active_canary, canary_history
from training.canary_trail import canary_trail
from training.live_alerts import recent_alerts
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
    canary = await state.store.call(active_canary, name)
    return {
        "task": name,
        "canary": canary and {**canary, "deadline": _deadline(canary)},
        "decision": guard.last_decisions.get(name) if guard else None,
        "history": await state.store.call(canary_history, name),
        "windows": guard.windows.series(name) if guard else [],
        "window_s": guard.windows.window_s if guard else None,
        "trail": _trail(guard, canary) if guard and canary else [],
    }


@router.get("/v1/drift-alerts", summary="The newest drift alerts on live champions")
async def get_drift_alerts(
    state: State, _who: Operator, limit: int = Query(default=20, ge=1, le=500)
) -> list[dict[str, Any]]:
    return await state.store.call(recent_alerts, limit)


def _started_s(canary: dict[str, Any]) -> float:
    return datetime.fromisoformat(canary["started_at"].replace("Z", "+00:00")).timestamp()


def _deadline(canary: dict[str, Any]) -> str:
    """When the policy's default applies if live outcomes have not decided by then."""
    end = _started_s(canary) + CanaryPolicy.model_validate(canary["policy"]).max_duration_s
    return datetime.fromtimestamp(end, UTC).isoformat().replace("+00:00", "Z")


def _trail(guard: LiveGuard, canary: dict[str, Any]) -> list[dict[str, Any]]:
    return canary_trail(
        guard.windows.counts,
        task=canary["task"],
        canary_id=canary["adapter_id"],
        champion_id=canary["champion_id"],
        start_s=_started_s(canary),
        window_s=guard.windows.window_s,
        min_events=CanaryPolicy.model_validate(canary["policy"]).min_events,
    )


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
