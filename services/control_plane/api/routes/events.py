"""POST /v1/events: a batch of events from an app, each accepted or rejected with a reason.

Who may send what: ground truth is a reviewer's word, so a correction needs a reviewer token
(or admin) and its ``reviewer`` is the token's name, whatever the body says; inference and
feedback events come from apps (role app, or admin). Anything else a caller sends is a
per-event rejection with a reason, or a 4xx for the whole body; never a 5xx.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Annotated, Any, Literal

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, ValidationError

from feedback.writer import Rejection, write_batch
from schemas import MAX_EVENT_BYTES, CorrectionEvent, EventEnvelope, Invalid, parse_object
from schemas.topics import TOPIC_OF_TYPE
from schemas.validation import decode_json, explain
from services.control_plane.api.deps import State, require_role
from services.control_plane.tokens import Principal

router = APIRouter(tags=["capture"])

ROLE_OF_TYPE = {"inference": "app", "feedback": "app", "correction": "reviewer"}
"""The role whose tokens may send each event type (admin tokens may send every type)."""


class ItemResult(BaseModel):
    index: int
    event_id: str | None
    status: Literal["accepted", "rejected"]
    reason: str | None = None


class BatchResult(BaseModel):
    accepted: int
    rejected: int
    results: list[ItemResult]


@router.post(
    "/v1/events",
    response_model=BatchResult,
    summary="Send a batch of inference, feedback and correction events",
    responses={
        400: {"description": "Body is not a JSON batch"},
        413: {"description": "Body or batch too large"},
        503: {"description": "Kafka down"},
    },
)
async def post_events(
    request: Request,
    state: State,
    who: Annotated[Principal, Depends(require_role("app", "reviewer"))],
) -> BatchResult:
    """Body: ``{"events": [...]}``, each event as in the published JSON Schemas. Accepted
    events are on their Kafka topic when this returns; rejected ones are in the dead-letter
    topic and table with the same reason as here. Re-sending a batch is safe: ids dedupe.
    Corrections need a reviewer (or admin) token, which also names the reviewer."""
    items = _items(await _read_limited(request, state.max_body_bytes), state.max_batch_events)
    request_id = uuid.uuid4().hex[:12]
    results: list[ItemResult] = []
    sends, rejections = [], []
    for index, item in enumerate(items):
        raw = _raw(item)
        checked = _checked(item, raw, who)
        if isinstance(checked, Invalid):
            rejection = Rejection.of(
                rejection_id=f"http:{request_id}:{index}",
                source="http",
                reason=checked.reason,
                raw=raw,
            )
            rejections.append(rejection)
            results.append(
                ItemResult(
                    index=index,
                    event_id=rejection.event_id,
                    status="rejected",
                    reason=rejection.reason,
                )
            )
            continue
        sends.append(
            state.producer.send(
                TOPIC_OF_TYPE[checked.type],
                checked.model_dump_json().encode(),
                key=checked.task.encode(),
            )
        )
        results.append(ItemResult(index=index, event_id=checked.event_id, status="accepted"))
    try:
        # Each send() resolves to a delivery future; both stages can fail if Kafka is down.
        await asyncio.gather(*await asyncio.gather(*sends))
        if rejections and state.agent is not None:
            await state.agent.publish_deadletter(rejections)
    except KafkaError as error:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"Kafka is unreachable ({type(error).__name__}); nothing was lost on our side: "
            "retry the same batch, event ids make it safe",
        ) from error
    if rejections:
        await state.store.call(write_batch, [], rejections)
    accepted = sum(r.status == "accepted" for r in results)
    return BatchResult(accepted=accepted, rejected=len(results) - accepted, results=results)


def _raw(item: object) -> bytes:
    """The item as JSON, as it would have been sent alone: what its size is checked on and
    what is kept when it is rejected. A lone surrogate (decoded from a \\ud800 escape) goes
    back to that escape: it has no UTF-8 form."""
    return json.dumps(item, ensure_ascii=False).encode("utf-8", "backslashreplace")


def _checked(item: object, raw: bytes, who: Principal) -> EventEnvelope | Invalid:
    """Validate one item of a batch: its size (as on Kafka), the contract, then the sender's
    right to send an event of its type."""
    if len(raw) > MAX_EVENT_BYTES:
        return Invalid(f"event is {len(raw)} bytes; the limit is {MAX_EVENT_BYTES}")
    parsed = parse_object(item)
    if isinstance(parsed, Invalid):
        return parsed
    needed = ROLE_OF_TYPE[parsed.type]
    if who.role not in (needed, "admin"):
        return Invalid(
            f"type: a {parsed.type} event needs a token of role {needed} (or admin); "
            f"this token's role is {who.role}"
        )
    if isinstance(parsed, CorrectionEvent):
        return _as_reviewer(parsed, who)
    return parsed


def _as_reviewer(correction: CorrectionEvent, who: Principal) -> CorrectionEvent | Invalid:
    """The correction in the token holder's name: ground truth is attributed to whoever
    holds the token, never to a name a caller typed."""
    try:
        return CorrectionEvent.model_validate({**correction.model_dump(), "reviewer": who.name})
    except ValidationError as error:
        return Invalid(f"this token's name cannot sign a correction: {explain(error)}")


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"body is {declared} bytes; the limit is {limit}: send smaller batches",
        )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(
                status.HTTP_413_CONTENT_TOO_LARGE,
                f"body exceeds the limit of {limit} bytes: send smaller batches",
            )
    return bytes(body)


def _items(body: bytes, max_events: int) -> list[Any]:
    payload = decode_json(body, max_bytes=len(body))  # the size was checked while reading
    if isinstance(payload, Invalid):
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, f"body is not a UTF-8 JSON batch: {payload.reason}"
        )
    events = payload.get("events") if isinstance(payload, dict) else None
    if not isinstance(events, list):
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, 'body must be a JSON object {"events": [event, ...]}'
        )
    if len(events) > max_events:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"batch has {len(events)} events; the limit is {max_events}: split it",
        )
    return events
