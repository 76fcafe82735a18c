"""What the control plane's routes share: the store, the producer, the ingest agent, tokens."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer

from services.control_plane.ingest_agent import IngestAgent
from services.control_plane.store_worker import StoreWorker


@dataclass
class ControlPlaneState:
    store: StoreWorker
    producer: AIOKafkaProducer
    bootstrap: str
    max_body_bytes: int
    max_batch_events: int
    agent: IngestAgent | None = None
    roles_by_hash: dict[str, str] = field(default_factory=dict)
