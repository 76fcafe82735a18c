"""``flywheel up``: the control plane process.

One process owns the DuckDB file (DuckDB allows one writer per file). It runs, on one event
loop: the ingest agent, the HTTP API (uvicorn) and, when no Kafka is configured, it starts and
stops the bundled broker around them. SIGINT/SIGTERM finish the current batch and exit cleanly.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from pathlib import Path

from aiokafka import AIOKafkaProducer

from feedback.private_files import private_dir, private_home
from services.auth_limiter import FailedAuthLimiter
from services.broker import EmbeddedBroker
from services.control_plane.api.main import create_app
from services.control_plane.cycle_runner import CyclePaths, CycleRunner
from services.control_plane.ingest_agent import IngestAgent
from services.control_plane.live_guard import LiveGuard
from services.control_plane.maintenance import Maintenance
from services.control_plane.scheduler import RetrainingScheduler
from services.control_plane.state import ControlPlaneState
from services.control_plane.store_worker import StoreWorker
from services.control_plane.tokens import Principal, load_principals, new_token, token_hash
from services.live_monitor.process import LiveMonitorProcess
from services.loop_server import (
    ensure_bindable,
    loop_server,
    raise_first_failure,
    stop_on_signals,
)
from services.settings import Settings
from services.topics import ensure_topics
from services.vllm_serving.reconciler import VllmReconciler, start_reconciler
from training.cycle_records import recover_stale_cycles

log = logging.getLogger(__name__)


def run(settings: Settings) -> None:
    """Start everything, serve until a signal, stop everything. Raises ServiceError early."""
    private_home(settings.home)  # before anything is written there: the store holds secrets
    private_dir(settings.run_dir)
    store = StoreWorker(settings.db_path)
    store.open()  # fails fast with StoreLockedError when another control plane runs
    broker = None
    try:
        ensure_bindable(
            settings.api_host,
            settings.api_port,
            host_variable="FLYWHEEL_API_HOST",
            port_variable="FLYWHEEL_API_PORT",
        )
        if settings.kafka_bootstrap is None:
            broker = EmbeddedBroker(
                settings.embedded_broker_port, log_file=settings.run_dir / "broker.log"
            )
            broker.start()
        ensure_topics(
            settings.bootstrap,
            partitions=settings.partitions,
            replication_factor=settings.replication_factor,
        )
        monitor = None
        if settings.live_monitor:
            monitor = LiveMonitorProcess(
                bootstrap=settings.bootstrap, log_file=settings.run_dir / "live-monitor.log"
            )
            monitor.start()
        try:
            asyncio.run(_serve(settings, store, monitor))
        finally:
            if monitor is not None:
                monitor.stop()
    finally:
        store.close()
        if broker is not None:
            broker.stop()
        for name in ("cli.token", "control-plane.json"):
            (settings.run_dir / name).unlink(missing_ok=True)


async def _serve(
    settings: Settings, store: StoreWorker, monitor: LiveMonitorProcess | None
) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap,
        client_id="flywheel-control-plane",
        linger_ms=5,
        request_timeout_ms=10_000,
        max_request_size=4 * 1024 * 1024,
    )
    await producer.start()
    state = ControlPlaneState(
        store=store,
        producer=producer,
        bootstrap=settings.bootstrap,
        max_body_bytes=settings.max_body_bytes,
        max_batch_events=settings.max_batch_events,
        review_lease_s=settings.review_lease_s,
        review_low_confidence=settings.review_low_confidence,
        spool_dir=settings.spool_dir,
        auth_limiter=FailedAuthLimiter(settings.auth_max_failures, settings.auth_failure_window_s),
    )
    state.principals = await store.call(load_principals)
    state.principals[token_hash(cli_token := new_token())] = Principal("admin", "local-cli")
    _write_private(settings.run_dir / "cli.token", cli_token)
    agent = IngestAgent(
        bootstrap=settings.bootstrap,
        group_id=settings.consumer_group,
        store=store,
        producer=producer,
        max_records=settings.ingest_max_records,
        max_wait_ms=settings.ingest_max_wait_ms,
    )
    state.agent = agent
    state.cycles = CycleRunner(
        store=store,
        producer=producer,
        paths=CyclePaths(
            base_model=settings.base_model,
            models_dir=settings.models_dir,
            adapters_dir=settings.adapters_dir,
            snapshots_dir=settings.snapshots_dir,
            cycles_dir=settings.cycles_dir,
        ),
        lease_s=settings.cycle_lease_s,
        timeout_s=settings.cycle_timeout_s,
        remote=settings.training == "remote",
    )
    recovered = await store.call(recover_stale_cycles, all_active=True)
    if recovered:
        log.warning("cycles interrupted by the last shutdown marked failed: %s", recovered)
    state.scheduler = RetrainingScheduler(
        store=store, runner=state.cycles, interval_s=settings.scheduler_interval_s
    )
    state.maintenance = Maintenance(store=store, home=settings.home)
    state.scheduler.add_housekeeping(
        state.maintenance.scheduled_collection, interval_s=settings.gc_interval_s
    )
    state.live_guard = LiveGuard(
        bootstrap=settings.bootstrap,
        store=store,
        runner=state.cycles,
        check_interval_s=settings.live_check_interval_s,
        monitor=monitor,
        webhook_url=(
            settings.alert_webhook_url.get_secret_value() if settings.alert_webhook_url else None
        ),
        window_s=settings.live_window_s,
    )
    server = loop_server(
        create_app(state),
        settings.api_host,
        settings.api_port,
        max_body_bytes=settings.max_body_bytes,
        trusted_proxies=settings.trusted_proxies,
    )

    stop = stop_on_signals()
    reconciler: VllmReconciler | None = None
    try:
        await state.live_guard.start()  # before the ingest stores anything new: see its doc
        await agent.start()
        await state.scheduler.refresh_cron_jobs()
        state.scheduler.start()
        tasks = {
            asyncio.create_task(agent.run(), name="ingest"),
            asyncio.create_task(state.live_guard.run(), name="live-guard"),
            asyncio.create_task(server.serve(), name="api"),
            asyncio.create_task(stop.wait(), name="signal"),
        }
        if settings.vllm_urls:
            reconciler = state.vllm = await start_reconciler(settings, store)
            tasks.add(asyncio.create_task(reconciler.run(), name="vllm-reconciler"))
        _write_private(
            settings.run_dir / "control-plane.json",
            json.dumps(
                {
                    "pid": os.getpid(),
                    "api_url": f"http://{settings.api_host}:{settings.api_port}",
                    "host": socket.gethostname(),
                }
            ),
        )
        log.info(
            "control plane up: API http://%s:%d, Kafka %s, store %s",
            settings.api_host,
            settings.api_port,
            settings.bootstrap,
            settings.db_path,
        )
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        log.info("shutting down")
        state.scheduler.shutdown()
        await state.cycles.stop()
        agent.stop()
        state.live_guard.request_stop()
        server.should_exit = True
        await asyncio.wait(tasks - {t for t in tasks if t.get_name() == "signal"}, timeout=15)
        for task in tasks:
            task.cancel()
        if reconciler is not None:
            await reconciler.stop()
        raise_first_failure(done)
    finally:
        if state.live_guard is not None:
            await state.live_guard.stop()
        await producer.stop()


def _write_private(path: Path, text: str) -> None:
    """Write a file only this user can read (the CLI's admin token lives in one)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
