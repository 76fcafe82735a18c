"""``flywheel serve --backend vllm``: the capturing gateway in front of vLLM replicas.

Stateless like the built-in server: it holds the base model's tokenizer (to build prompts
exactly as training did), asks the control plane for tasks and champions, follows
flywheel.promotions, and keeps each replica's served names fresh. Answers are published as
inference events through the SDK client, which spools them while Kafka is unreachable.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer

from feedback.client import FlywheelClient
from services.auth_limiter import FailedAuthLimiter
from services.errors import ServiceError
from services.inference_server.champions import parse_time
from services.inference_server.control_plane_link import ControlPlaneLink
from services.inference_server.main import (
    http_server,
    instance_name,
    serve_until_stopped,
    server_token,
)
from services.inference_server.promotions import parse_promotion, promotions_consumer
from services.loop_server import ensure_bindable
from services.settings import Settings
from services.vllm_serving.gateway import GatewayState, create_gateway
from services.vllm_serving.replica import VllmReplica
from services.vllm_serving.replica_pool import ReplicaPool
from services.vllm_serving.versions import VersionRouter
from training.checkpoints import load_tokenizer, resolve_base_model

log = logging.getLogger(__name__)


def run(settings: Settings, *, progress: Callable[[str], None] | None = None) -> None:
    if not settings.vllm_urls:
        raise ServiceError(
            "--backend vllm needs FLYWHEEL_VLLM_URLS: the vLLM replicas' URLs, comma-separated "
            "(like http://vllm-0:8000,http://vllm-1:8000)"
        )
    ensure_bindable(
        settings.serve_host,
        settings.serve_port,
        host_variable="FLYWHEEL_SERVE_HOST",
        port_variable="FLYWHEEL_SERVE_PORT",
    )
    token = server_token(settings)
    base_path = resolve_base_model(settings.base_model, settings.models_dir, progress=progress)
    if progress:
        progress(f"loading the tokenizer of {base_path}")
    tokenizer = load_tokenizer(base_path)
    key = settings.vllm_api_key.get_secret_value() if settings.vllm_api_key else None
    state = GatewayState(
        link=ControlPlaneLink(settings.api_url, token),
        auth_limiter=FailedAuthLimiter(settings.auth_max_failures, settings.auth_failure_window_s),
        router=VersionRouter(),
        pool=ReplicaPool(
            [
                VllmReplica(url, api_key=key, timeout_s=settings.vllm_timeout_s)
                for url in settings.vllm_urls
            ]
        ),
        client=FlywheelClient(
            settings.bootstrap, spool_dir=settings.spool_dir / instance_name(settings)
        ),
        tokenizer=tokenizer,
        adapters_dir=settings.adapters_dir,
        base_model_name=settings.base_model or base_path.name,
        max_new_tokens=settings.serve_max_new_tokens,
    )
    asyncio.run(_serve(settings, state))


async def _serve(settings: Settings, state: GatewayState) -> None:
    server = http_server(create_gateway(state), settings)
    consumer = await promotions_consumer(settings.bootstrap, "flywheel-vllm-gateway")
    try:
        for row in await state.link.snapshot():
            state.router.apply(
                row["name"], row.get("champion"), parse_time(row.get("champion_since"))
            )
        await state.pool.refresh_all()
        state.ready = True
        log.info(
            "gateway up: http://%s:%d, replicas %s",
            settings.serve_host,
            settings.serve_port,
            [r.url for r in state.pool.up()],
        )
        background = {"promotions": _follow(consumer, state.router), "replicas": state.pool.run()}
        await serve_until_stopped(server, settings, background)
    finally:
        await consumer.stop()
        await state.pool.close()
        await state.link.close()
        await asyncio.to_thread(state.client.close, 10)


async def _follow(consumer: AIOKafkaConsumer, router: VersionRouter) -> None:
    """Apply every promotion to the gateway's routes as it arrives."""
    while True:
        batches = await consumer.getmany(timeout_ms=200, max_records=100)
        for records in batches.values():
            for record in records:
                message = parse_promotion(record.value)
                if message is not None:
                    router.apply(
                        message.task, message.adapter_id, parse_time(message.at), message.canary
                    )
