"""The gateway's forwarding, against replicas that answer as vLLM does (in memory): a failed
replica is skipped, a version unloaded under a request is replaced by the one that served
before, every answer is captured with its version, and with no replica the caller is told
what to check. The real vLLM path is in tests/integration/test_vllm_serving.py."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from schemas.tasks import TaskDefinition
from services.auth_limiter import FailedAuthLimiter
from services.control_plane.tokens import Principal
from services.errors import ServiceError
from services.settings import Settings
from services.vllm_serving.gateway import GatewayState, create_gateway
from services.vllm_serving.gateway_main import run
from services.vllm_serving.replica import ReplicaRefused, ReplicaUnavailable, Served
from services.vllm_serving.replica_pool import ReplicaPool
from services.vllm_serving.versions import VersionRouter
from training.checkpoints import load_tokenizer

SPAM = TaskDefinition(name="spam", instruction="Spam?", kind="label", labels=["spam", "ham"])
T0 = datetime(2026, 12, 1, tzinfo=UTC)
APP = {"Authorization": "Bearer good"}


class Link:
    async def principal(self, token: str) -> Principal | None:
        return Principal("app", "app-1") if token == "good" else None

    async def task(self, name: str) -> TaskDefinition | None:
        return SPAM if name == "spam" else None


class Replica:
    """Serves ``names``; answers with the first token it is allowed."""

    def __init__(self, url: str, names: set[str], down: bool = False) -> None:
        self.url, self.names, self.down = url, names, down
        self.bodies: list[dict[str, Any]] = []

    async def served(self) -> Served:
        return Served("base", frozenset({"base", *self.names}))

    async def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        self.bodies.append(body)
        if self.down:
            raise ReplicaUnavailable(f"{self.url} unreachable")
        if body["model"] not in {"base", *self.names}:
            raise ReplicaRefused(f"The model `{body['model']}` does not exist.", 404)
        token = body["allowed_token_ids"][0]  # the first label's first token
        return {
            "choices": [
                {"text": "sp", "token_ids": [token], "logprobs": {"token_logprobs": [-0.3]}}
            ],
            "usage": {"prompt_tokens": 30, "completion_tokens": 1},
        }

    async def close(self) -> None:
        pass


class Events:
    def __init__(self) -> None:
        self.emitted: list[Any] = []

    def emit(self, event: Any) -> None:
        self.emitted.append(event)


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path) -> Any:
    return load_tokenizer(tiny_model_dir)


def gateway(tokenizer: Any, replicas: list[Replica], router: VersionRouter) -> GatewayState:
    pool = ReplicaPool(replicas)  # type: ignore[arg-type]
    for replica in replicas:
        pool.served[replica.url] = Served("base", frozenset({"base", *replica.names}))
    return GatewayState(
        link=Link(),  # type: ignore[arg-type]
        auth_limiter=FailedAuthLimiter(20, 60),
        router=router,
        pool=pool,
        client=Events(),  # type: ignore[arg-type]
        tokenizer=tokenizer,
        adapters_dir=Path("/nonexistent"),
        base_model_name="smollm2",
        max_new_tokens=16,
        ready=True,
    )


def ask(state: GatewayState, body: dict[str, Any], headers: dict[str, str] = APP) -> httpx.Response:
    """One request to the gateway app, in process."""

    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_gateway(state))
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            return await client.post("/v1/generate", json=body, headers=headers)

    return asyncio.run(post())


def promoted(*adapters: str) -> VersionRouter:
    router = VersionRouter()
    for i, adapter in enumerate(adapters):
        router.apply("spam", adapter, T0 + timedelta(seconds=i))
    return router


def test_a_failed_replica_is_skipped_and_the_answer_is_captured_with_its_version(
    tokenizer,
):
    down, up = Replica("http://down", {"spam@a1"}, down=True), Replica("http://up", {"spam@a1"})
    state = gateway(tokenizer, [down, up], promoted("a1"))
    answers = [ask(state, {"task": "spam", "input": f"mail {i}"}) for i in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert {a.json()["adapter_id"] for a in answers} == {"a1"}
    assert len(down.bodies) == 1 and state.pool.served["http://down"] is None
    assert up.bodies[0]["model"] == "spam@a1"
    assert up.bodies[0]["max_tokens"] == 1 and len(up.bodies[0]["allowed_token_ids"]) == 2
    assert {a.json()["output"] for a in answers} == {"spam"}
    events = state.client.emitted  # type: ignore[attr-defined]
    assert [e.event_id for e in events] == [a.json()["inference_id"] for a in answers]
    assert events[0].adapter_id == "a1" and events[0].mean_logprob == pytest.approx(-0.3)
    assert events[0].metadata == {"backend": "vllm"}


def test_a_version_unloaded_under_a_request_falls_back_to_the_one_that_served_before(
    tokenizer,
):
    replica = Replica("http://r0", {"spam@a1"})
    state = gateway(tokenizer, [replica], promoted("a1", "b2"))
    state.pool.served[replica.url] = Served("base", frozenset({"base", "spam@b2"}))  # stale
    response = ask(state, {"task": "spam", "input": "hello"})
    assert response.status_code == 200, response.text
    assert response.json()["adapter_id"] == "a1"
    assert [b["model"] for b in replica.bodies] == ["spam@b2", "spam@a1"]


def test_with_no_replica_up_the_caller_gets_503_saying_what_to_check(tokenizer):
    replica = Replica("http://r0", {"spam@a1"}, down=True)
    state = gateway(tokenizer, [replica], promoted("a1"))
    first = ask(state, {"task": "spam", "input": "hello"})
    second = ask(state, {"task": "spam", "input": "hello"})
    assert first.status_code == second.status_code == 503
    assert "FLYWHEEL_VLLM_URLS" in second.json()["error"]["message"]
    assert second.headers["retry-after"] == "1"
    assert state.client.emitted == []  # type: ignore[attr-defined]


def test_unknown_tasks_and_tokens_are_refused_before_any_replica_is_asked(tokenizer):
    replica = Replica("http://r0", set())
    state = gateway(tokenizer, [replica], VersionRouter())
    missing = ask(state, {"task": "nope", "input": "hello"})
    assert missing.status_code == 404 and "flywheel task create" in missing.text
    anonymous = ask(state, {"task": "spam", "input": "x"}, headers={})
    assert anonymous.status_code == 401
    assert replica.bodies == []


def test_the_vllm_backend_without_replicas_says_what_to_set(tmp_path):
    with pytest.raises(ServiceError, match="FLYWHEEL_VLLM_URLS"):
        run(Settings(home=tmp_path))
