"""``flywheel serve``: an inference server. Stateless: run as many as you like.

It loads the base model once, asks the control plane for the tasks and their champions,
loads those adapters, then follows flywheel.promotions to swap champions in place. Answers
are published as inference events through the SDK client, which spools them to disk while
Kafka is unreachable, so an answer is never lost and a request never fails because of Kafka.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import socket
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response, status
from fastapi.exception_handlers import http_exception_handler

from feedback.client import FlywheelClient
from feedback.private_files import private_dir
from services.auth_limiter import FailedAuthLimiter
from services.errors import ServiceError
from services.inference_server.app import ServerState, create_app
from services.inference_server.champions import ChampionBook
from services.inference_server.control_plane_link import ControlPlaneLink, ControlPlaneRateLimited
from services.inference_server.model_host import ModelHost
from services.inference_server.promotions import PromotionFollower
from services.loop_server import (
    LoopServer,
    ensure_bindable,
    loop_server,
    raise_first_failure,
    stop_on_signals,
)
from services.settings import Settings
from training.checkpoints import resolve_base_model

log = logging.getLogger(__name__)


def instance_name(settings: Settings) -> str:
    """Names this server's spool, run file and log: servers on other machines (or containers)
    may share the store."""
    return f"server-{socket.gethostname()}-{settings.serve_port}"


def http_server(app: FastAPI, settings: Settings) -> LoopServer:
    """A serving process's HTTP loop on FLYWHEEL_SERVE_HOST:PORT (the built-in server and the
    vLLM gateway); a control plane that refuses it for a while is answered as 429 with
    Retry-After (``retry_later``)."""
    app.add_exception_handler(ControlPlaneRateLimited, retry_later)
    return loop_server(
        app,
        settings.serve_host,
        settings.serve_port,
        max_body_bytes=settings.max_body_bytes,
        trusted_proxies=settings.trusted_proxies,
    )


async def serve_until_stopped(
    server: LoopServer, settings: Settings, background: dict[str, Coroutine[Any, Any, Any]]
) -> None:
    """Serve, with ``background`` (name → coroutine) beside, until a signal or until any of
    them ends; re-raise what one died of. While serving, RUN_DIR/<instance>.json names the
    process (pid, URL, host) for `flywheel status` and `flywheel down`."""
    stop = stop_on_signals()
    private_dir(settings.run_dir)
    run_file = settings.run_dir / f"{instance_name(settings)}.json"
    url = f"http://{settings.serve_host}:{settings.serve_port}"
    run_file.write_text(json.dumps({"pid": os.getpid(), "url": url, "host": socket.gethostname()}))
    tasks = {asyncio.create_task(c, name=name) for name, c in background.items()}
    tasks |= {
        asyncio.create_task(server.serve(), name="api"),
        asyncio.create_task(stop.wait(), name="signal"),
    }
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        server.should_exit = True
        await asyncio.wait([t for t in tasks if t.get_name() == "api"], timeout=10)
    finally:
        for task in tasks:
            task.cancel()
        run_file.unlink(missing_ok=True)
    raise_first_failure(done)


def server_token(settings: Settings) -> str:
    """FLYWHEEL_SERVER_TOKEN, else the local control plane's token file."""
    if settings.server_token is not None:
        return settings.server_token.get_secret_value()
    path = settings.run_dir / "cli.token"
    try:
        return path.read_text().strip()
    except OSError as error:
        raise ServiceError(
            f"no token to reach the control plane: set FLYWHEEL_SERVER_TOKEN (a token from "
            f"`flywheel token create --role server`) or run `flywheel up` here first ({path})"
        ) from error


async def retry_later(request: Request, error: Exception) -> Response:
    """A control plane that refuses this server for a while is answered as 429 with
    Retry-After, in the app's own error format, not as a 500."""
    assert isinstance(error, ControlPlaneRateLimited)
    refusal = HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS,
        f"{error}; try again in {error.retry_after_s} s",
        headers={"Retry-After": str(error.retry_after_s)},
    )
    handlers = request.app.exception_handlers
    handler = next(
        (handlers[kind] for kind in type(refusal).__mro__ if kind in handlers),
        http_exception_handler,
    )
    response = handler(request, refusal)
    return await response if inspect.isawaitable(response) else response


def run(settings: Settings, *, progress: Callable[[str], None] | None = None) -> None:
    ensure_bindable(
        settings.serve_host,
        settings.serve_port,
        host_variable="FLYWHEEL_SERVE_HOST",
        port_variable="FLYWHEEL_SERVE_PORT",
    )
    token = server_token(settings)
    base_path = resolve_base_model(settings.base_model, settings.models_dir, progress=progress)
    host = ModelHost(base_path)
    if progress:
        progress(f"loading the base model from {base_path}")
    host.load()
    try:
        asyncio.run(_serve(settings, host, token, base_path))
    finally:
        host.close()


async def _serve(settings: Settings, host: ModelHost, token: str, base_path: Path) -> None:
    link = ControlPlaneLink(settings.api_url, token)
    book = ChampionBook()
    spool = settings.spool_dir / instance_name(settings)  # one spool per server
    client = FlywheelClient(settings.bootstrap, spool_dir=spool)
    refused: list[dict] = []
    server_name = f"{socket.gethostname()}:{settings.serve_port}"

    async def refuse(task: str, adapter_id: str | None, reason: str) -> None:
        refused.append({"task": task, "adapter_id": adapter_id, "reason": reason})
        await link.alert(
            kind="adapter_refused",
            task=task,
            adapter_id=adapter_id,
            reason=reason,
            server=server_name,
        )

    follower = PromotionFollower(
        bootstrap=settings.bootstrap,
        book=book,
        host=host,
        adapters_dir=settings.adapters_dir,
        on_refused=refuse,
    )
    state = ServerState(
        host=host,
        link=link,
        book=book,
        follower=follower,
        client=client,
        base_model_name=settings.base_model or base_path.name,
        max_new_tokens=settings.serve_max_new_tokens,
        refused=refused,
        auth_limiter=FailedAuthLimiter(settings.auth_max_failures, settings.auth_failure_window_s),
    )
    server = http_server(create_app(state), settings)
    try:
        await follower.start()  # subscribe first: nothing published meanwhile is missed
        for row in await link.snapshot():
            await follower.apply(row["name"], row.get("champion"), row.get("champion_since"))
        state.ready = True
        log.info(
            "inference server up: http://%s:%d, serving %s",
            settings.serve_host,
            settings.serve_port,
            book.as_dict(),
        )
        await serve_until_stopped(server, settings, {"promotions": follower.run()})
    finally:
        await follower.stop()
        await link.close()
        await asyncio.to_thread(client.close, 10)
