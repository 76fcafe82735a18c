"""Offset commits pinned to the group membership a batch was fetched under.

aiokafka's ``commit()`` retries until the coordinator answers, and each retry sends the
consumer's membership *at send time*. Across a broker restart that loses its data (the bundled
in-memory broker does), the membership changes under a waiting commit: a failed heartbeat
resets it to generation -1, which a broker accepts as a standalone commit for a group with no
members. The old log's offsets then land on the new log, and the consumer resumes past events
it never read (seen: 50 of 350 events skipped, one per old offset).

So a batch's offsets are committed once, only while the consumer is still the member that
fetched the batch; anything else leaves them uncommitted. That is always safe here: the batch
is already in DuckDB, a later batch's commit covers it, and a re-read stores nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

NO_GENERATION = -1
"""aiokafka's generation while the consumer is not a member of its group."""


@dataclass(frozen=True, slots=True)
class Membership:
    """Who the consumer is in its group: a rejoin changes the member id, a rebalance the
    generation."""

    generation: int
    member_id: str


def membership_of(consumer: AIOKafkaConsumer) -> Membership:
    # aiokafka (pinned) keeps the group's generation on its coordinator; there is no public
    # accessor.
    coordinator = consumer._coordinator
    return Membership(coordinator.generation, coordinator.member_id)


async def commit_once(
    consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int], fetched_under: Membership
) -> str | None:
    """Commit ``offsets`` in one request if the consumer is still ``fetched_under``.

    Returns None when committed, else why not (for a log line)."""
    now = membership_of(consumer)
    if fetched_under.generation == NO_GENERATION or now != fetched_under:
        return (
            f"the consumer's group membership changed since the batch was fetched "
            f"(generation {fetched_under.generation} -> {now.generation})"
        )
    coordinator = consumer._coordinator
    assignment = consumer._subscription.subscription.assignment
    commits = {tp: OffsetAndMetadata(offset, "") for tp, offset in offsets.items()}
    try:
        # One attempt; the request carries the membership checked above (it is built before
        # the coroutine's first await).
        await coordinator._do_commit_offsets(assignment, commits)
    except KafkaError as error:
        return f"the broker did not take the commit ({type(error).__name__})"
    return None
