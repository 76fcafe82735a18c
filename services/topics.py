"""Create Flywheel's topics at start-up when they are missing."""

from __future__ import annotations

import logging
import time

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from schemas.topics import ALL_TOPICS
from services.errors import BrokerUnavailableError

log = logging.getLogger(__name__)


def ensure_topics(
    bootstrap: str, *, partitions: int, replication_factor: int = 1, timeout_s: float = 20.0
) -> list[str]:
    """Create each missing topic with ``partitions`` partitions; returns the ones created."""
    admin = _admin(bootstrap, timeout_s)
    try:
        existing = set(admin.list_topics())
        missing = [t for t in ALL_TOPICS if t not in existing]
        for topic in missing:
            try:
                admin.create_topics([NewTopic(topic, partitions, replication_factor)])
            except TopicAlreadyExistsError:
                continue  # another process created it in between
            log.info("created topic %s (%d partitions)", topic, partitions)
        return missing
    finally:
        admin.close()


def _admin(bootstrap: str, timeout_s: float) -> KafkaAdminClient:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return KafkaAdminClient(
                bootstrap_servers=bootstrap, client_id="flywheel-admin", request_timeout_ms=10_000
            )
        except KafkaError as error:
            if time.monotonic() > deadline:
                raise BrokerUnavailableError(
                    f"cannot reach Kafka at {bootstrap} ({error}). Check that the broker runs "
                    "and FLYWHEEL_KAFKA_BOOTSTRAP is host:port, or unset it to use the bundled "
                    "broker."
                ) from error
            time.sleep(0.5)
