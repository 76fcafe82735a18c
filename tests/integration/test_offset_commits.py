"""Offsets read from a broker that then restarted without its data never reach the new one:
the consumer reads the new log from its start, and no event is skipped."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from services.control_plane.offset_commits import commit_once, membership_of
from services.topics import ensure_topics

pytestmark = pytest.mark.integration

TOPIC = "flywheel.inference"
PARTITIONS = [TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)]


async def _send(bootstrap: str, values: list[str]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for i, value in enumerate(values):
            await producer.send_and_wait(TOPIC, value.encode(), partition=i % 2)
    finally:
        await producer.stop()


async def _read(consumer: AIOKafkaConsumer, count: int, timeout_s: float = 60) -> list[str]:
    values: list[str] = []
    deadline = asyncio.get_running_loop().time() + timeout_s
    while len(values) < count and asyncio.get_running_loop().time() < deadline:
        batches = await consumer.getmany(timeout_ms=500)
        values += [m.value.decode() for records in batches.values() for m in records]
    return values


async def _committed(bootstrap: str, group: str) -> list[int | None]:
    observer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await observer.start()
    try:
        return [await observer.committed(tp) for tp in PARTITIONS]
    finally:
        await observer.stop()


def _consumer(bootstrap: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        TOPIC,
        bootstrap_servers=bootstrap,
        group_id="ingest",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=6_000,
        heartbeat_interval_ms=1_500,
    )


def test_a_batch_is_committed_under_the_membership_it_was_fetched_under(broker):
    async def scenario() -> None:
        await _send(broker.bootstrap, [f"old {i}" for i in range(20)])
        consumer = _consumer(broker.bootstrap)
        await consumer.start()
        try:
            assert len(await _read(consumer, 20)) == 20
            fetched_under = membership_of(consumer)
            assert await commit_once(consumer, {tp: 10 for tp in PARTITIONS}, fetched_under) is None
            assert await _committed(broker.bootstrap, "ingest") == [10, 10]

            broker.stop()
            broker.start()  # in memory: the topics, the group and its commits are gone
            ensure_topics(broker.bootstrap, partitions=2)
            # What a failed heartbeat does to the consumer, before it rejoins: aiokafka's own
            # commit() now sends generation -1, which a broker that does not know the group
            # takes as a standalone commit.
            consumer._coordinator.reset_generation()

            why_not = await commit_once(consumer, {tp: 10 for tp in PARTITIONS}, fetched_under)
            assert why_not is not None and "membership changed" in why_not
            assert await _committed(broker.bootstrap, "ingest") == [None, None]
            new = [f"new {i}" for i in range(30)]
            await _send(broker.bootstrap, new)
            assert sorted(await _read(consumer, len(new))) == sorted(new)
        finally:
            await consumer.stop()

    asyncio.run(scenario())
