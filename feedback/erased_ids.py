"""What an erasure keeps: a keyed hash of each erased event id, never the event.

Kafka still holds an erased event until its topic's retention expires, and an SDK spool may
send it again; a replay, a new consumer group or a re-send must not store it a second time.
So every erased id (the events' own ids and the inference ids feedback points at) is kept as
HMAC-SHA256 under a random key made on the first erasure and kept in the store: the hashes
let ingest refuse a returning id without keeping anything that reads back to it, and without
the key nobody can test guesses against them.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

import duckdb

from schemas import CorrectionEvent, EventEnvelope, FeedbackEvent

E = TypeVar("E", bound=EventEnvelope)


def erasure_key(connection: duckdb.DuckDBPyConnection, *, create: bool = False) -> bytes | None:
    """The store's hash key; None when nothing was ever erased (and ``create`` is False)."""
    row = connection.execute("SELECT key FROM erasure_keys LIMIT 1").fetchone()
    if row is not None:
        return bytes.fromhex(row[0])
    if not create:
        return None
    key = secrets.token_hex(32)
    connection.execute(
        "INSERT INTO erasure_keys VALUES (?, ?)", [key, datetime.now(UTC).replace(tzinfo=None)]
    )
    return bytes.fromhex(key)


def id_hash(key: bytes, event_id: str) -> str:
    return hmac.new(key, event_id.encode(), hashlib.sha256).hexdigest()


def remember_erased(connection: duckdb.DuckDBPyConnection, event_ids: Iterable[str]) -> int:
    """Keep the keyed hashes of ``event_ids``; returns how many were new."""
    key = erasure_key(connection, create=True)
    assert key is not None
    hashes = sorted({id_hash(key, event_id) for event_id in event_ids})
    if not hashes:
        return 0
    row = connection.execute(
        "INSERT OR IGNORE INTO erased_events SELECT unnest(?::VARCHAR[]), ?",
        [hashes, datetime.now(UTC).replace(tzinfo=None)],
    ).fetchone()
    return int(row[0]) if row else 0


def erased_among(connection: duckdb.DuckDBPyConnection, event_ids: Iterable[str]) -> set[str]:
    """The ids among ``event_ids`` that were erased (one query; none before any erasure)."""
    key = erasure_key(connection)
    wanted = {event_id for event_id in event_ids if event_id}
    if key is None or not wanted:
        return set()
    by_hash = {id_hash(key, event_id): event_id for event_id in wanted}
    rows = connection.execute(
        "SELECT id_hash FROM erased_events WHERE id_hash IN (SELECT unnest(?::VARCHAR[]))",
        [list(by_hash)],
    ).fetchall()
    return {by_hash[row[0]] for row in rows}


def without_erased(
    connection: duckdb.DuckDBPyConnection, events: Sequence[E]
) -> tuple[list[E], int]:
    """``events`` less those erased before: an erased id, or feedback and corrections on an
    erased inference. Returns the events to store and how many were refused."""
    erased = erased_among(connection, (i for event in events for i in _ids_of(event)))
    if not erased:
        return list(events), 0
    kept = [event for event in events if erased.isdisjoint(_ids_of(event))]
    return kept, len(events) - len(kept)


def _ids_of(event: EventEnvelope) -> tuple[str, ...]:
    if isinstance(event, FeedbackEvent | CorrectionEvent):
        return (event.event_id, event.inference_id)
    return (event.event_id,)
