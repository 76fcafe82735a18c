"""The capturing gateway in front of vLLM: the inference server's contract, vLLM's engine.

POST /v1/generate              {task, input}            → output, inference_id, adapter_id
POST /v1/chat/completions      OpenAI-compatible; `model` names the task; stream=true (SSE)
POST /v1/feedback              feedback on an answer, by its inference_id
GET  /healthz                  no token: readiness, replicas, routes

Tokens, roles, request models, feedback and error format are the inference server's own
(``services.inference_server.app``). Each request goes to a replica that is up, under the
name of the version that answers it (``task@<adapter id>``); a replica that fails is marked
down and the next one is tried, so a request fails only when no replica can answer. Every
answer is captured as an inference event naming the version that made it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, status
from fastapi.responses import StreamingResponse

from feedback.client import FlywheelClient
from schemas.tasks import TaskDefinition
from services.auth_limiter import FailedAuthLimiter
from services.inference_server.app import Answer, captured_answer, known_task, serving_app
from services.inference_server.control_plane_link import ControlPlaneLink
from services.vllm_serving.chat_chunks import answer_chunks, relay_chunks
from services.vllm_serving.completion import (
    Completion,
    answer_tokens,
    completion_body,
    label_first_tokens,
    read_completion,
    stop_token,
)
from services.vllm_serving.replica import ReplicaRefused, ReplicaUnavailable, VllmReplica
from services.vllm_serving.replica_pool import ReplicaPool
from services.vllm_serving.versions import NotServed, VersionRouter
from training.adapter_files import adapter_dir
from training.auto_recipe import ResolvedRecipe, serving_lengths, stored_recipe
from training.chat_format import prompt_ids, style_of

ROUNDS = 2
"""Passes over the replicas: a second only when a version was unloaded under a request."""


@dataclass
class GatewayState:
    link: ControlPlaneLink
    auth_limiter: FailedAuthLimiter
    router: VersionRouter
    pool: ReplicaPool
    client: FlywheelClient
    tokenizer: Any
    adapters_dir: Path
    base_model_name: str
    max_new_tokens: int
    ready: bool = False
    recipes: dict[str, ResolvedRecipe | None] = field(default_factory=dict)

    def recipe(self, adapter_id: str | None) -> ResolvedRecipe | None:
        """The recipe an adapter was trained with (cached: adapters are immutable)."""
        if adapter_id is None:
            return None
        if adapter_id not in self.recipes:
            self.recipes[adapter_id] = stored_recipe(adapter_dir(self.adapters_dir, adapter_id))
        return self.recipes[adapter_id]


@dataclass(frozen=True)
class Attempt:
    """One try at a request: the replica, the version that answers there, the body."""

    replica: VllmReplica
    adapter_id: str | None
    body: dict[str, Any]
    first_tokens: dict[int, str] | None
    """Labels by first token, when the answer is that one token (``label_first_tokens``)."""


def create_gateway(state: GatewayState) -> FastAPI:
    async def healthz() -> dict[str, Any]:
        return {
            "status": "ok" if state.ready else "starting",
            "backend": "vllm",
            "champions": state.router.book.as_dict(),
            "canaries": state.router.book.canaries(),
            "replicas": {
                url: sorted(served.names) if served else None
                for url, served in state.pool.served.items()
            },
        }

    return serving_app(
        "Flywheel gateway (vLLM)",
        state,
        healthz,
        partial(answer, state),
        partial(stream_answer, state),
    )


async def answer(
    state: GatewayState,
    task_name: str,
    text: str,
    metadata: dict[str, Any],
    max_new_tokens: int | None,
    caller_key: str | None,
) -> Answer:
    """Forward one request to a replica that can answer it, capture the answer, return it."""
    task = await _ready_task(state, task_name)
    started = time.perf_counter()
    for _ in range(ROUNDS):
        unloaded = False
        for attempt in _attempts(state, task, text, max_new_tokens, caller_key):
            replica = attempt.replica
            try:
                answered = await replica.complete(attempt.body)
                completion = read_completion(answered, attempt.first_tokens)
            except (ReplicaUnavailable, ValueError) as error:
                state.pool.mark_down(replica, str(error))
                continue
            except ReplicaRefused as error:
                unloaded |= await _refused(state, replica, error)
                continue
            return capture(
                state, task_name, text, completion, attempt.adapter_id, started, metadata
            )
        if not unloaded:
            break
    raise _no_replica(task_name)


async def stream_answer(
    state: GatewayState,
    task_name: str,
    text: str,
    metadata: dict[str, Any],
    max_new_tokens: int | None,
    caller_key: str | None,
) -> StreamingResponse:
    """Open a streamed answer on a replica (trying the next one until one accepts), then
    pass its chunks through as chat-completion chunks; the answer is captured at its end.
    A label task's answer is one label: it is answered whole and sent as chunks."""
    task = await _ready_task(state, task_name)
    if task.kind == "label":
        result = await answer(state, task_name, text, metadata, max_new_tokens, caller_key)
        return StreamingResponse(answer_chunks(result), media_type="text/event-stream")
    started = time.perf_counter()
    for _ in range(ROUNDS):
        unloaded = False
        attempts = _attempts(state, task, text, max_new_tokens, caller_key, stream=True)
        for attempt in attempts:
            replica, adapter_id = attempt.replica, attempt.adapter_id
            stack = AsyncExitStack()
            try:
                payloads = await stack.enter_async_context(replica.stream(attempt.body))
            except ReplicaUnavailable as error:
                state.pool.mark_down(replica, str(error))
                continue
            except ReplicaRefused as error:
                unloaded |= await _refused(state, replica, error)
                continue

            finish = partial(
                capture,
                state,
                task_name,
                text,
                adapter_id=adapter_id,
                started=started,
                metadata=metadata,
            )
            chunks = _relayed(stack, relay_chunks(payloads, task_name, finish))
            return StreamingResponse(chunks, media_type="text/event-stream")
        if not unloaded:
            break
    raise _no_replica(task_name)


def _attempts(
    state: GatewayState,
    task: TaskDefinition,
    text: str,
    max_new_tokens: int | None,
    caller_key: str | None,
    *,
    stream: bool = False,
) -> Iterator[Attempt]:
    """A try for each replica that is up and serves a version of the task, in the order to
    try them; each built only when the one before it failed."""
    limit = min(max_new_tokens or state.max_new_tokens, state.max_new_tokens)
    style = style_of(task)
    first_tokens = label_first_tokens(state.tokenizer, style)
    for replica in state.pool.in_order():
        served = state.pool.served[replica.url]
        if served is None or served.base is None:
            continue
        try:
            adapter_id, name = state.router.pick(task.name, caller_key, served.names)
        except NotServed:
            continue
        lengths = serving_lengths(
            state.recipe(adapter_id), task, state.tokenizer, default_answer_tokens=limit
        )
        prompt = prompt_ids(state.tokenizer, style, text, lengths.prompt_budget, lengths.truncation)
        body = completion_body(
            model=name or served.base,
            prompt=prompt,
            style=style,
            max_tokens=answer_tokens(state.tokenizer, style, lengths, limit),
            stop_token_id=stop_token(state.tokenizer),
            first_tokens=first_tokens,
            stream=stream,
        )
        yield Attempt(replica, adapter_id, body, first_tokens)


async def _ready_task(state: GatewayState, task_name: str) -> TaskDefinition:
    if not state.ready:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the gateway is still starting")
    return await known_task(state.link, task_name)


async def _refused(state: GatewayState, replica: VllmReplica, error: ReplicaRefused) -> bool:
    """True when the version was unloaded under the request (404): the replica's served
    names are refreshed, so the next round picks a version it has. Any other refusal means
    the replica cannot take this request: it is marked down and the next one is tried."""
    if error.status_code == 404:
        await state.pool.refresh(replica)
        return True
    state.pool.mark_down(replica, str(error))
    return False


def _no_replica(task_name: str) -> HTTPException:
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        f"no vLLM replica serves task {task_name} now (all down, or its version not loaded "
        "yet); retry shortly, and check FLYWHEEL_VLLM_URLS and the gateway's /healthz",
        headers={"Retry-After": "1"},
    )


def capture(
    state: GatewayState,
    task_name: str,
    text: str,
    completion: Completion,
    adapter_id: str | None,
    started: float,
    metadata: dict[str, Any],
) -> Answer:
    """Emit the answer as an inference event (queued, never awaited) and return it."""
    return captured_answer(
        state.client,
        state.base_model_name,
        task_name,
        text,
        output=completion.text,
        mean_logprob=completion.mean_logprob,
        prompt_tokens=completion.prompt_tokens,
        output_tokens=completion.output_tokens,
        adapter_id=adapter_id,
        started=started,
        metadata={**metadata, "backend": "vllm"},
    )


async def _relayed(stack: AsyncExitStack, chunks: AsyncIterator[str]) -> AsyncIterator[str]:
    """``chunks``, then the replica's stream closed (also when the caller goes away)."""
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        await stack.aclose()
