"""The inference server's app run in this process, on the tiny model, against a real control
plane: for tests that must see inside it (how often the model ran) or point its SDK client at
a broker of their choosing (a silent one, for fault tests)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from fastapi.testclient import TestClient

from feedback.client import FlywheelClient
from services.auth_limiter import FailedAuthLimiter
from services.inference_server.app import ServerState, create_app
from services.inference_server.champions import ChampionBook
from services.inference_server.control_plane_link import ControlPlaneLink
from services.inference_server.model_host import ModelHost
from services.inference_server.promotions import PromotionFollower
from tests.processes import ControlPlaneProcess, create_token

T = TypeVar("T")


class CountingHost(ModelHost):
    """The real model host; it also counts the model calls, so a test can tell whether a
    request reached the model."""

    calls = 0

    async def call(
        self, choose: Callable[[], str | None], fn: Callable[[Any, Any], T]
    ) -> tuple[str | None, T]:
        self.calls += 1
        return await super().call(choose, fn)


@dataclass
class InProcessServer:
    http: TestClient
    host: CountingHost
    client: FlywheelClient


async def _no_refusals(task: str, adapter_id: str | None, reason: str) -> None:
    raise AssertionError(f"no adapter is promoted in these tests ({task}, {adapter_id}: {reason})")


@contextmanager
def served_in_process(
    plane: ControlPlaneProcess, model_dir: Path, *, bootstrap: str, spool_dir: Path
) -> Iterator[InProcessServer]:
    """An inference server app whose SDK client sends to ``bootstrap``; its HTTP client
    carries a token of role app. The client is closed (delivered or spooled) on exit."""
    host = CountingHost(model_dir)
    host.load()
    client = FlywheelClient(bootstrap, spool_dir=spool_dir)
    book = ChampionBook()
    state = ServerState(
        host=host,
        link=ControlPlaneLink(plane.url, plane.admin_token),
        book=book,
        follower=PromotionFollower(
            bootstrap=bootstrap,
            book=book,
            host=host,
            adapters_dir=plane.home / "adapters",
            on_refused=_no_refusals,
        ),
        client=client,
        base_model_name="tiny-llama",
        max_new_tokens=16,
        auth_limiter=FailedAuthLimiter(100, 60.0),
        ready=True,
    )
    token = create_token(plane, "app", name="in-process")
    try:
        with TestClient(create_app(state), headers={"Authorization": f"Bearer {token}"}) as http:
            yield InProcessServer(http=http, host=host, client=client)
    finally:
        client.close(timeout_s=2)
        host.close()
