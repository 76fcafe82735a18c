"""Where the live monitor's replay begins: the time of the oldest event still on the topics.

The monitor counts every event it can replay from the inference, feedback and correction
topics; the store counts, for the live guard, the events from before that
(``services.control_plane.live_rebuild``). The first record of each partition stands for the
oldest (producers stamp events as they send them, so a partition is close to time order).
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas.topics import CORRECTIONS, FEEDBACK, INFERENCE

log = logging.getLogger(__name__)

EVENT_TOPICS = (INFERENCE, FEEDBACK, CORRECTIONS)


async def oldest_event_time(bootstrap: str, *, timeout_s: float = 10.0) -> datetime | None:
    """The earliest ``occurred_at`` (naive UTC) among the first record of every non-empty
    partition of the event topics; None when the topics hold nothing (a fresh broker)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        client_id="flywheel-replay-start",
    )
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in EVENT_TOPICS
            for p in sorted(consumer.partitions_for_topic(topic) or set())
        ]
        consumer.assign(partitions)
        starts = await consumer.beginning_offsets(partitions)
        ends = await consumer.end_offsets(partitions)
        waiting = {tp for tp in partitions if ends[tp] > starts[tp]}
        for tp in waiting:
            consumer.seek(tp, starts[tp])
        return await asyncio.wait_for(_first_times(consumer, waiting), timeout_s)
    finally:
        await consumer.stop()


async def _first_times(consumer: AIOKafkaConsumer, waiting: set[TopicPartition]) -> datetime | None:
    """The earliest time among the first records of ``waiting``. Records none of which has a
    readable time give ``datetime.min``: the store then counts nothing (never twice)."""
    if not waiting:
        return None
    times: list[datetime] = []
    consumer.pause(*(tp for tp in consumer.assignment() if tp not in waiting))
    while waiting:
        batches = await consumer.getmany(*waiting, timeout_ms=500, max_records=1)
        for tp, records in batches.items():
            if records:
                waiting.discard(tp)
                consumer.pause(tp)
                when = _occurred_at(records[0].value)
                times += [when] if when is not None else []
    return min(times, default=datetime.min)


def _occurred_at(raw: bytes | None) -> datetime | None:
    try:
        moment = datetime.fromisoformat(json.loads(raw or b"")["occurred_at"])
    except (ValueError, KeyError, TypeError):
        log.warning("a record without a readable occurred_at opens an event topic")
        return None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(tzinfo=None)
