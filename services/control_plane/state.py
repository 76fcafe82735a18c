"""What the control plane's routes share: the store, the producer, the ingest agent, tokens."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaProducer

from services.auth_limiter import FailedAuthLimiter
from services.control_plane.cycle_runner import CycleRunner
from services.control_plane.ingest_agent import IngestAgent
from services.control_plane.live_guard import LiveGuard
from services.control_plane.maintenance import Maintenance
from services.control_plane.scheduler import RetrainingScheduler
from services.control_plane.store_worker import StoreWorker
from services.control_plane.tokens import Principal
from services.vllm_serving.reconciler import VllmReconciler


@dataclass
class ControlPlaneState:
    store: StoreWorker
    producer: AIOKafkaProducer
    bootstrap: str
    max_body_bytes: int
    max_batch_events: int
    auth_limiter: FailedAuthLimiter
    agent: IngestAgent | None = None
    cycles: CycleRunner | None = None
    scheduler: RetrainingScheduler | None = None
    maintenance: Maintenance | None = None
    live_guard: LiveGuard | None = None
    vllm: VllmReconciler | None = None
    """Keeps FLYWHEEL_VLLM_URLS serving every routed version; None without vLLM."""
    principals: dict[str, Principal] = field(default_factory=dict)
    review_lease_s: float = 300.0
    review_low_confidence: float = -0.7
    spool_dir: Path | None = None
    """FLYWHEEL_HOME/spool: the inference servers' spools, which an erasure scrubs."""
