"""The reviewer queue (role reviewer): lease the most needed item, approve it or correct it.

A verdict travels as a correction event through Kafka like any other (approving keeps the
model's output as the corrected output), so the store, the dead-letter rules and the
ground-truth view treat a reviewer exactly like an app's reviewer integration.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from aiokafka.errors import KafkaError
from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field, ValidationError

from feedback.review_queue import (
    LeaseError,
    check_lease,
    claim_verdict,
    finish,
    lease_next,
    queue_summary,
    unclaim,
)
from feedback.review_queue import item as review_item
from feedback.review_queue import release as release_item
from schemas.events import CorrectionEvent, EventId, TaskName, Text
from schemas.topics import CORRECTIONS
from schemas.validation import explain
from services.control_plane.api.deps import Reviewer, State
from services.control_plane.tokens import Principal
from training.registry import audit

router = APIRouter(tags=["review queue"])


class LeaseRequest(BaseModel):
    task: TaskName | None = Field(default=None, description="Only this task's items")


class Approve(BaseModel):
    note: str | None = Field(default=None, max_length=4096)


class Correct(BaseModel):
    corrected_output: Text
    note: str | None = Field(default=None, max_length=4096)


@router.get("/v1/review/queue", summary="How many items wait, by reason")
async def get_queue(state: State, _who: Reviewer, task: TaskName | None = None) -> dict:
    return await state.store.call(
        queue_summary, task=task, low_confidence=state.review_low_confidence
    )


@router.post("/v1/review/lease", summary="Lease the most needed item (or keep your current one)")
async def post_lease(body: LeaseRequest, state: State, who: Reviewer) -> dict[str, Any]:
    found = await state.store.call(
        lease_next,
        holder=who.token_id,
        reviewer=who.name,
        task=body.task,
        lease_s=state.review_lease_s,
        low_confidence=state.review_low_confidence,
    )
    return {"item": found}


@router.get("/v1/review/items/{inference_id}", summary="One item as a reviewer sees it")
async def get_item(inference_id: EventId, state: State, _who: Reviewer) -> dict[str, Any]:
    found = await state.store.call(
        review_item, inference_id, low_confidence=state.review_low_confidence
    )
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no inference {inference_id}")
    return found


@router.post("/v1/review/items/{inference_id}/approve", summary="The output is right as is")
async def post_approve(inference_id: EventId, body: Approve, state: State, who: Reviewer) -> dict:
    leased = await _leased(state, inference_id, who)
    return await _verdict(
        state,
        inference_id,
        who,
        leased["task"],
        leased["output"],
        body.note or "approved as is",
        "approved",
    )


@router.post("/v1/review/items/{inference_id}/correct", summary="Replace the output")
async def post_correct(inference_id: EventId, body: Correct, state: State, who: Reviewer) -> dict:
    leased = await _leased(state, inference_id, who)
    return await _verdict(
        state, inference_id, who, leased["task"], body.corrected_output, body.note, "corrected"
    )


@router.post("/v1/review/items/{inference_id}/skip", summary="Give the item to someone else")
async def post_skip(inference_id: EventId, state: State, who: Reviewer) -> dict[str, str]:
    await _leased(state, inference_id, who)
    await state.store.call(release_item, inference_id, who.token_id)
    return {"inference_id": inference_id, "status": "skipped"}


async def _leased(state: State, inference_id: str, who: Principal) -> dict[str, Any]:
    try:
        return await state.store.call(check_lease, inference_id, who.token_id)
    except LeaseError as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from error


async def _verdict(
    state: State,
    inference_id: str,
    who: Principal,
    task: str,
    output: str,
    note: str | None,
    outcome: str,
) -> dict[str, Any]:
    """Claim the verdict (once, atomically), publish it as a correction, then record it.
    Of several verdicts racing for one item, only the claim's winner publishes anything."""
    try:
        event = CorrectionEvent(
            event_id=f"review-{uuid.uuid4().hex}",
            occurred_at=datetime.now(UTC),
            task=task,
            inference_id=inference_id,
            corrected_output=output,
            reviewer=who.name,
            note=note,
        )
    except ValidationError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, explain(error)) from error
    try:
        await state.store.call(claim_verdict, inference_id, who.token_id, outcome)
    except LeaseError as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from error
    try:
        await state.producer.send_and_wait(
            CORRECTIONS, event.model_dump_json().encode(), key=task.encode()
        )
    except KafkaError as error:
        await state.store.call(unclaim, inference_id, who.token_id)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"Kafka is unreachable ({type(error).__name__}); your lease holds: try again",
        ) from error
    await state.store.call(finish, inference_id, who.token_id)
    await state.store.call(
        audit,
        actor=who.name,
        action=f"review:{outcome}",
        task=task,
        details={"inference_id": inference_id, "correction_id": event.event_id},
    )
    return {"inference_id": inference_id, "outcome": outcome, "correction_id": event.event_id}
