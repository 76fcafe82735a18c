"""POST /v1/events: a batch of events from an app, each accepted or rejected with a reason."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Annotated, Any, Literal

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel

from feedback.writer import Rejection, write_batch
from schemas import Invalid, parse_object
from schemas.topics import TOPIC_OF_TYPE
from services.control_plane.api.deps import State, require_role
from services.control_plane.tokens import Principal

router = APIRouter(tags=["capture"])


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
    responses={413: {"description": "Body or batch too large"}, 503: {"description": "Kafka down"}},
)
async def post_events(
    request: Request, state: State, _who: Annotated[Principal, Depends(require_role("app"))]
) -> BatchResult:
    """Body: ``{"events": [...]}``, each event as in the published JSON Schemas. Accepted
    events are on their Kafka topic when this returns; rejected ones are in the dead-letter
    topic and table with the same reason as here. Re-sending a batch is safe: ids dedupe."""
    items = _items(await _read_limited(request, state.max_body_bytes), state.max_batch_events)
    request_id = uuid.uuid4().hex[:12]
    results: list[ItemResult] = []
    sends, rejections = [], []
    for index, item in enumerate(items):
        parsed = parse_object(item)
        if isinstance(parsed, Invalid):
            raw = json.dumps(item, ensure_ascii=False).encode()
            rejections.append(
                Rejection.of(
                    rejection_id=f"http:{request_id}:{index}",
                    source="http",
                    reason=parsed.reason,
                    raw=raw,
                )
            )
            event_id = item.get("event_id") if isinstance(item, dict) else None
            results.append(
                ItemResult(
                    index=index,
                    event_id=event_id if isinstance(event_id, str) else None,
                    status="rejected",
                    reason=parsed.reason,
                )
            )
            continue
        sends.append(
            state.producer.send(
                TOPIC_OF_TYPE[parsed.type],
                parsed.model_dump_json().encode(),
                key=parsed.task.encode(),
            )
        )
        results.append(ItemResult(index=index, event_id=parsed.event_id, status="accepted"))
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
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, f"body is not valid UTF-8 JSON: {error}"
        ) from error
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
