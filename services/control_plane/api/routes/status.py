"""GET /healthz (no token), GET /v1/status (operator) and GET /v1/whoami (any token)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from feedback.status import store_summary
from services.control_plane.api.deps import Operator, State, require_role
from services.control_plane.tokens import Principal
from training.live_alerts import recent_alerts

router = APIRouter(tags=["status"])


@router.get("/healthz", summary="Liveness: no token needed")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/v1/status", summary="Stored and rejected events per type and task")
async def get_status(state: State, _who: Operator) -> dict[str, Any]:
    summary = await state.store.call(store_summary)
    summary["service"] = {"running": True, "kafka_bootstrap": state.bootstrap}
    summary["live_alerts"] = await state.store.call(recent_alerts)
    if state.vllm is not None:
        summary["vllm"] = state.vllm.status()  # replicas up, what each serves, refusals
    if state.agent is not None:
        counters = state.agent.counters
        summary["service"]["ingest"] = {
            "batches": counters.batches,
            "stored": counters.stored,
            "duplicates_ignored": counters.duplicates,
            "rejected": counters.rejected,
        }
    return summary


@router.get("/v1/whoami", summary="The role and name of the token sent (any valid token)")
async def whoami(
    who: Annotated[Principal, Depends(require_role("app", "reviewer", "operator", "server"))],
) -> dict[str, str]:
    return {"role": who.role, "name": who.name}
