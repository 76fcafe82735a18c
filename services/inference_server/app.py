"""The inference server's HTTP API: answers from each task's champion, every answer captured.

POST /v1/generate              {task, input}            → output, inference_id, adapter_id
POST /v1/chat/completions      OpenAI-compatible; `model` names the task
POST /v1/feedback              feedback on an answer, by its inference_id
GET  /healthz                  no token: readiness, champions, swap figures
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any, Literal, Protocol

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from feedback.client import FlywheelClient
from schemas.events import (
    MAX_TEXT_CHARS,
    NO_NUL_PATTERN,
    EventId,
    FeedbackEvent,
    FeedbackSignal,
    InferenceEvent,
    MetadataKey,
    MetadataValue,
    ShortText,
    TaskName,
    Text,
)
from schemas.tasks import TaskDefinition
from schemas.validation import explain
from services.auth_limiter import FailedAuthLimiter
from services.control_plane.api.deps import refuse_if_blocked
from services.control_plane.tokens import Principal
from services.inference_server.champions import ChampionBook
from services.inference_server.control_plane_link import ControlPlaneLink, ControlPlaneUnavailable
from services.inference_server.model_host import AdapterLoadError, ModelHost
from services.inference_server.promotions import PromotionFollower
from training.auto_recipe import serving_lengths
from training.chat_format import style_of
from training.predict import Prediction, predict


@dataclass
class ServerState:
    host: ModelHost
    link: ControlPlaneLink
    book: ChampionBook
    follower: PromotionFollower
    client: FlywheelClient
    base_model_name: str
    max_new_tokens: int
    auth_limiter: FailedAuthLimiter
    refused: list[dict[str, Any]] = field(default_factory=list)
    ready: bool = False

    def __post_init__(self) -> None:
        """Every answer's event names the base model: a name the contract refuses would make
        every answer uncapturable, so it is refused here, at start-up."""
        try:
            TypeAdapter(ShortText).validate_python(self.base_model_name)
        except ValidationError as error:
            raise ValueError(
                f"base model name {self.base_model_name[:80]!r} cannot be captured in events "
                "(1-256 characters, no NUL); set FLYWHEEL_BASE_MODEL to a shorter name or path"
            ) from error


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: TaskName
    input: Text
    user: ShortText | None = Field(
        default=None,
        description="Caller key: the same key keeps the same version during a canary "
        "(the X-Flywheel-User header works too); none: a random version per request.",
    )
    metadata: dict[MetadataKey, MetadataValue] = Field(default_factory=dict, max_length=32)


class Answer(BaseModel):
    inference_id: str
    task: str
    output: str
    adapter_id: str | None = Field(description="null: the base model answered")
    base_model: str
    mean_logprob: float
    latency_ms: float
    prompt_tokens: int
    output_tokens: int


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: (
        Annotated[str, StringConstraints(max_length=200_000, pattern=NO_NUL_PATTERN)] | None
    ) = None


class ChatRequest(BaseModel):
    """The OpenAI chat-completions request; fields Flywheel does not use are accepted.

    The last user message becomes the task's input, so it must pass the event contract's
    text rules here, before the model runs: an answer that could not be captured is never
    produced."""

    model: TaskName = Field(description="The task's name")
    messages: list[ChatMessage] = Field(min_length=1, max_length=256)
    max_tokens: int | None = Field(default=None, ge=1, le=4096)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=4096)
    stream: bool = False
    user: ShortText | None = None

    @property
    def input(self) -> str:
        """The last user message with content: what the task answers."""
        return next(m.content for m in reversed(self.messages) if m.role == "user" and m.content)

    @model_validator(mode="after")
    def _input_is_capturable(self) -> ChatRequest:
        users = [m.content for m in self.messages if m.role == "user" and m.content]
        if not users:
            raise ValueError("messages hold no user message with content; send one")
        if len(users[-1]) > MAX_TEXT_CHARS:
            raise ValueError(
                f"the last user message is the task's input and may hold at most "
                f"{MAX_TEXT_CHARS} characters; this one has {len(users[-1])}: shorten it"
            )
        return self


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: TaskName
    inference_id: EventId
    signal: FeedbackSignal
    rating: int | None = Field(default=None, ge=1, le=5)
    edited_output: Text | None = None
    user_id: ShortText | None = None


_bearer = HTTPBearer(auto_error=False, description="A token with role app (flywheel token create)")


class CallerCheck(Protocol):
    """What the serving routes need of an app's state: this server and the vLLM gateway both
    have it."""

    link: ControlPlaneLink
    auth_limiter: FailedAuthLimiter
    client: FlywheelClient


async def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller's principal; 401 without a valid token, 403 unless its role is app."""
    state: CallerCheck = request.app.state.server
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "send a token as 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    client = request.client.host if request.client else "unknown"
    refuse_if_blocked(state.auth_limiter, client)
    try:
        principal = await state.link.principal(credentials.credentials)
    except ControlPlaneUnavailable as error:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(error)) from error
    if principal is None:
        state.auth_limiter.failed(client)
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "unknown or revoked token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if principal.role not in ("app", "admin"):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"a {principal.role} token cannot call the inference server; it needs role app",
        )
    return principal


App = Annotated[Principal, Depends(caller)]


def create_app(state: ServerState) -> FastAPI:
    async def healthz() -> dict[str, Any]:
        return {
            "status": "ok" if state.ready else "starting",
            "champions": state.book.as_dict(),
            "canaries": state.book.canaries(),
            "loaded_adapters": state.host.loaded,
            "swaps": state.follower.swaps,
            "last_swap_s": state.follower.last_swap_s,
            "refused_adapters": state.refused[-20:],
        }

    return serving_app("Flywheel inference server", state, healthz, partial(answer, state))


class AnswerFn(Protocol):
    """Answers one input of a task: ``(task, input, metadata, max_new_tokens, caller_key)``."""

    async def __call__(
        self,
        task_name: str,
        text: str,
        metadata: dict[str, Any],
        max_new_tokens: int | None,
        caller_key: str | None,
    ) -> Answer: ...


def serving_app(
    title: str,
    state: CallerCheck,
    healthz: Callable[[], Awaitable[dict[str, Any]]],
    answer_with: AnswerFn,
    stream_with: Callable[..., Awaitable[Any]] | None = None,
) -> FastAPI:
    """The serving API both backends offer (the built-in server and the vLLM gateway):
    the same routes, tokens and errors; only how an answer is made differs. Without
    ``stream_with``, ``stream=true`` is refused with a 400."""
    app = FastAPI(title=title, version="0.1.0")
    app.state.server = state
    app.add_exception_handler(HTTPException, openai_style_error)
    app.add_exception_handler(RequestValidationError, openai_style_error)
    app.get("/healthz", summary="Readiness and what is served (no token)")(healthz)

    @app.post("/v1/generate", response_model=Answer, summary="Answer one input of a task")
    async def generate(body: GenerateRequest, request: Request, _who: App) -> Answer:
        key = body.user or user_header(request)
        return await answer_with(body.task, body.input, body.metadata, None, key)

    @app.post("/v1/chat/completions", summary="OpenAI-compatible; `model` is the task")
    async def chat(body: ChatRequest, request: Request, _who: App) -> Any:
        if body.stream and stream_with is None:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "stream=true is not supported")
        limit = body.max_completion_tokens or body.max_tokens
        metadata = {"api": "chat.completions", **({"user": body.user} if body.user else {})}
        key = body.user or user_header(request)
        if body.stream and stream_with is not None:
            return await stream_with(body.model, body.input, metadata, limit, key)
        result = await answer_with(body.model, body.input, metadata, limit, key)
        return chat_completion(body.model, result)

    @app.post("/v1/feedback", status_code=202, summary="Feedback on an answer")
    async def post_feedback(body: FeedbackRequest, _who: App) -> dict[str, str]:
        return accept_feedback(state.client, body)

    return app


def accept_feedback(client: FlywheelClient, body: FeedbackRequest) -> dict[str, str]:
    """Queue a feedback event (the SDK's sender does the network I/O); 422 when invalid."""
    try:
        event = FeedbackEvent(
            event_id=uuid.uuid4().hex, occurred_at=datetime.now(UTC), **body.model_dump()
        )
    except ValidationError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, explain(error)) from error
    client.emit(event)
    return {"event_id": event.event_id, "status": "accepted"}


async def openai_style_error(request: Request, error: Exception) -> JSONResponse:
    """Errors carry FastAPI's ``detail`` and OpenAI's ``error`` object, so the OpenAI SDK
    shows the reason (for example "no task named ...") instead of a bare status code."""
    if isinstance(error, RequestValidationError):
        code, detail = 422, explain_validation(error.errors())
    else:
        assert isinstance(error, HTTPException)
        code, detail = error.status_code, str(error.detail)
    kind = {
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        422: "invalid_request_error",
        400: "invalid_request_error",
    }.get(code, "api_error")
    headers = getattr(error, "headers", None)
    return JSONResponse(
        {"detail": detail, "error": {"message": detail, "type": kind, "code": code}},
        status_code=code,
        headers=headers,
    )


def explain_validation(errors: Sequence[Any]) -> str:
    """'field: problem; ...', in the event contract's words (a NUL byte is named as such)."""
    parts = []
    for error in errors:
        where = ".".join(str(p) for p in error["loc"] if p != "body")
        problem = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "string_pattern_mismatch" and (
            error.get("ctx", {}).get("pattern") == NO_NUL_PATTERN
        ):
            problem = "must not contain NUL bytes (\\x00)"
        parts.append(f"{where}: {problem}" if where else problem)
    return "; ".join(parts)


async def answer(
    state: ServerState,
    task_name: str,
    text: str,
    metadata: dict[str, Any],
    max_new_tokens: int | None,
    caller_key: str | None = None,
) -> Answer:
    if not state.ready:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the server is still loading")
    task = await known_task(state.link, task_name)
    started = time.perf_counter()
    style = style_of(task)
    limit = min(max_new_tokens or state.max_new_tokens, state.max_new_tokens)
    try:  # the champion is read when the model thread starts the request: never stale
        adapter_id, predictions = await state.host.call(
            lambda: state.book.route(task_name, caller_key),
            lambda model, tok: predict(
                model,
                tok,
                style,
                [text],
                lengths=serving_lengths(
                    state.host.recipe_in_use(), task, tok, default_answer_tokens=limit
                ),
                max_new_tokens=limit,
            ),
        )
    except AdapterLoadError as error:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(error)) from error
    prediction: Prediction = predictions[0]
    return captured_answer(
        state.client,
        state.base_model_name,
        task_name,
        text,
        output=prediction.output,
        mean_logprob=prediction.mean_logprob,
        prompt_tokens=prediction.prompt_tokens,
        output_tokens=prediction.output_tokens,
        adapter_id=adapter_id,
        started=started,
        metadata=metadata,
    )


def chat_completion(task_name: str, result: Answer) -> dict[str, Any]:
    """The whole answer as an OpenAI chat completion, with the ``flywheel`` answer beside."""
    return {
        "id": result.inference_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": task_name,
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "logprobs": None,
                "message": {"role": "assistant", "content": result.output},
            }
        ],
        "usage": {
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.output_tokens,
            "total_tokens": result.prompt_tokens + result.output_tokens,
        },
        "system_fingerprint": result.adapter_id or "base",
        "flywheel": result.model_dump(),
    }


def captured_answer(
    client: Any,
    base_model: str,
    task_name: str,
    text: str,
    *,
    output: str,
    mean_logprob: float,
    prompt_tokens: int,
    output_tokens: int,
    adapter_id: str | None,
    started: float,
    metadata: dict[str, Any],
) -> Answer:
    """Emit the answer as an inference event (queued on ``client``, never awaited: an answer
    does not wait on Kafka) and return it. The request was validated against the contract
    before the model ran; what the model made is bounded here, so the event is valid by
    construction and the answer returned is exactly the answer captured. Both the built-in
    server and the vLLM gateway answer through this."""
    output = capturable_output(output)
    mean_logprob = capturable_logprob(mean_logprob)
    latency_ms = min((time.perf_counter() - started) * 1000, MAX_LATENCY_MS)
    event = InferenceEvent(
        event_id=uuid.uuid4().hex,
        occurred_at=datetime.now(UTC),
        task=task_name,
        input=text,
        output=output,
        base_model=base_model,
        adapter_id=adapter_id,
        latency_ms=round(latency_ms, 3),
        mean_logprob=round(mean_logprob, 6),
        metadata=metadata,
    )
    client.emit(event)
    return Answer(
        inference_id=event.event_id,
        task=task_name,
        output=output,
        adapter_id=adapter_id,
        base_model=base_model,
        mean_logprob=mean_logprob,
        latency_ms=latency_ms,
        prompt_tokens=prompt_tokens,
        output_tokens=output_tokens,
    )


async def known_task(link: ControlPlaneLink, task_name: str) -> TaskDefinition:
    """The task's definition; 404 when there is none, 503 when the control plane is away."""
    try:
        task = await link.task(task_name)
    except ControlPlaneUnavailable as error:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(error)) from error
    if task is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"no task named {task_name}: create it with `flywheel task create`",
        )
    return task


def user_header(request: Request) -> str | None:
    """The ``X-Flywheel-User`` header: the caller key of a client that sends no ``user``."""
    value = request.headers.get("x-flywheel-user")
    return value[:256] if value else None


MAX_LATENCY_MS = 3_600_000.0
"""The contract's bound on ``latency_ms``; a request that waited longer is recorded at it."""


def capturable_output(text: str) -> str:
    """The output as the contract can hold it: NUL bytes dropped, at most MAX_TEXT_CHARS."""
    return text.replace("\x00", "")[:MAX_TEXT_CHARS]


def capturable_logprob(value: float) -> float:
    """The mean log-probability within the contract's [-100, 0]; NaN (a broken model) reads
    as the least confident value."""
    return -100.0 if math.isnan(value) else max(-100.0, min(0.0, value))
