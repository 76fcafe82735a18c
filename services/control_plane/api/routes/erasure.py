"""POST /v1/erasures: ``flywheel forget`` through the API (operator or admin).

The request is the operator's decision: no confirmation step. The store work runs on the
store thread (``training.forget``), then the DuckDB file is rewritten so the deleted bytes
are gone, rollbacks are published to the inference servers and owed retraining starts.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from feedback.compaction import compact
from feedback.erasure import Selector
from schemas.events import EventId, MetadataKey
from schemas.topics import PROMOTIONS
from services.control_plane.api.deps import Operator, State
from services.control_plane.erasure_retrains import start_owed_retrains
from services.control_plane.state import ControlPlaneState
from training.forget import forget
from training.taint import pending_retrains

router = APIRouter(tags=["erasure"])

MetadataText = Annotated[str, Field(min_length=1, max_length=1024, pattern=r"^[^\x00]*$")]


class ErasureRequest(BaseModel):
    """Exactly one selector: a metadata pair, an inference id, or an event id."""

    model_config = ConfigDict(extra="forbid")

    metadata: dict[MetadataKey, MetadataText] | None = Field(
        default=None, description='One pair, e.g. {"user": "4711"}: inferences carrying it.'
    )
    inference_id: EventId | None = Field(
        default=None, description="One inference and everything attached to it."
    )
    event_id: EventId | None = Field(
        default=None, description="One event of any type (an inference takes its feedback)."
    )

    @model_validator(mode="after")
    def _one_selector(self) -> ErasureRequest:
        given = [x for x in (self.metadata, self.inference_id, self.event_id) if x is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of metadata, inference_id or event_id")
        if self.metadata is not None and len(self.metadata) != 1:
            raise ValueError('metadata takes exactly one KEY: VALUE pair, e.g. {"user": "4711"}')
        return self

    def selector(self) -> Selector:
        pair = next(iter(self.metadata.items())) if self.metadata else None
        return Selector(metadata=pair, inference_id=self.inference_id, event_id=self.event_id)


@router.post("/v1/erasures", summary="Erase events, everywhere, and taint what learned from them")
async def post_erasure(body: ErasureRequest, state: State, who: Operator) -> dict[str, Any]:
    """Deletes the selected events and everything attached, scrubs spools, snapshots and
    cycle evidence, marks adapters trained on them tainted and applies each task's erasure
    policy. Answers what was erased, in counts and ids."""
    if state.cycles is None or state.spool_dir is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the control plane is starting")
    report = await state.store.call(
        forget,
        body.selector(),
        actor=who.name,
        spool_dir=state.spool_dir,
        cycles_dir=state.cycles.paths.cycles_dir,
    )
    await state.store.reopen_after(compact)
    for message in report.promotions():
        await _publish(state, message)
    await start_owed_retrains(state.store, state.cycles)  # or the scheduler beat us to it
    # Tasks whose retraining still waits: their previous cycle is running.
    return {**report.as_dict(), "retraining_waiting": await state.store.call(pending_retrains)}


async def _publish(state: ControlPlaneState, message: dict[str, Any]) -> None:
    """Tell the inference servers about a rollback, as every champion change does."""
    await state.producer.send_and_wait(
        PROMOTIONS, json.dumps(message).encode(), key=message["task"].encode()
    )
