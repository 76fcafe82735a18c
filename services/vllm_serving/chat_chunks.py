"""OpenAI chat-completion shapes of a gateway answer: the whole completion, and the chunks
of a stream (server-sent events) relayed from vLLM's completion stream as they arrive."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from services.inference_server.app import Answer
from services.vllm_serving.completion import Completion, mean_logprob
from services.vllm_serving.replica import ReplicaUnavailable


async def relay_chunks(
    payloads: AsyncIterator[str], task_name: str, finish: Callable[[Completion], Answer]
) -> AsyncIterator[str]:
    """vLLM's completion chunks as chat-completion chunks, as they arrive; once the replica
    ends the stream, ``finish`` captures the whole answer, which the last chunk carries."""
    sse = chunk_writer(task_name)
    pieces: list[str] = []
    logprobs: list[float | None] = []
    usage: dict[str, Any] = {}
    yield sse({"role": "assistant", "content": ""})
    try:
        async for payload in payloads:
            data = json.loads(payload)
            usage = data.get("usage") or usage
            for choice in data.get("choices") or []:
                piece = choice.get("text") or ""
                logprobs += (choice.get("logprobs") or {}).get("token_logprobs") or []
                pieces.append(piece)
                if piece:
                    yield sse({"content": piece})
    except ReplicaUnavailable as error:  # nothing whole to capture: the caller is told
        yield f"data: {json.dumps({'error': {'message': str(error), 'type': 'api_error'}})}\n\n"
        return
    result = finish(
        Completion(
            text="".join(pieces),
            mean_logprob=mean_logprob(logprobs),
            output_tokens=int(usage.get("completion_tokens", len(logprobs))),
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
        )
    )
    yield sse({}, "stop", flywheel=result.model_dump())
    yield "data: [DONE]\n\n"


async def answer_chunks(result: Answer) -> AsyncIterator[str]:
    """A whole answer as the chunks of a stream: role, content, end (with the answer)."""
    sse = chunk_writer(result.task)
    yield sse({"role": "assistant", "content": ""})
    yield sse({"content": result.output})
    yield sse({}, "stop", flywheel=result.model_dump())
    yield "data: [DONE]\n\n"


def chunk_writer(task_name: str) -> Callable[..., str]:
    """``sse(delta, finish=None, **extra)``: one chat-completion chunk as an SSE event."""
    chunk_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    def sse(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        chunk = {
            "id": chunk_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": task_name,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
            **extra,
        }
        return f"data: {json.dumps(chunk)}\n\n"

    return sse
