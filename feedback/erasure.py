"""Erasure in the store: the events a selector names and every row attached to them.

A selector names inference events by a metadata pair (``user=4711``), one inference by id,
or one event of any type by id. Erasing an inference takes its feedback, corrections, review
item, regression-set entry and lineage rows with it, and the dead-letter rows that hold the
same payload (rejected copies of those events, or rejected feedback on them). Ground truth is
a view over these tables, so it is recomputed by the deletion itself.

Functions take the store connection and run inside the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb

ID_TABLES = {"inference": "inferences", "feedback": "feedback", "correction": "corrections"}


class SelectorError(ValueError):
    """A selector that names nothing sensible; the message says how to write one."""


@dataclass(frozen=True, slots=True)
class Selector:
    """Exactly one of: a metadata pair, an inference id, an event id."""

    metadata: tuple[str, str] | None = None
    inference_id: str | None = None
    event_id: str | None = None

    def __post_init__(self) -> None:
        given = [x for x in (self.metadata, self.inference_id, self.event_id) if x is not None]
        if len(given) != 1:
            raise SelectorError(
                "name exactly one of --metadata KEY=VALUE, --inference-id ID or --event-id ID"
            )
        if self.metadata is not None and not all(self.metadata):
            raise SelectorError("--metadata needs KEY=VALUE with both parts, e.g. user=4711")

    @classmethod
    def from_metadata(cls, pair: str) -> Selector:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SelectorError(f"--metadata {pair!r}: give KEY=VALUE, e.g. user=4711")
        return cls(metadata=(key.strip(), value.strip()))

    def describe(self) -> str:
        """The selector as the operator gave it: what the audit log records."""
        if self.metadata is not None:
            return f"metadata {self.metadata[0]}={self.metadata[1]}"
        if self.inference_id is not None:
            return f"inference-id {self.inference_id}"
        return f"event-id {self.event_id}"


@dataclass(slots=True)
class StoredMatches:
    """The ids of the stored rows an erasure deletes."""

    inference_ids: set[str] = field(default_factory=set)
    feedback_ids: set[str] = field(default_factory=set)
    correction_ids: set[str] = field(default_factory=set)
    rejection_ids: set[str] = field(default_factory=set)
    review_items: int = 0

    def event_ids(self) -> set[str]:
        """Every id to refuse from now on: also the ids a selector named but the store never
        held (an inference erased before it arrived stays erased)."""
        return self.inference_ids | self.feedback_ids | self.correction_ids


def find_matches(connection: duckdb.DuckDBPyConnection, selector: Selector) -> StoredMatches:
    """The stored rows ``selector`` erases: its inferences, what is attached to them, and
    the dead-letter rows holding the same payloads."""
    matches = StoredMatches()
    if selector.metadata is not None:
        key, value = selector.metadata
        matches.inference_ids = _column(
            connection,
            "SELECT event_id FROM inferences WHERE json_extract_string(metadata, [?])[1] = ?",
            [key, value],
        )
    elif selector.inference_id is not None:
        matches.inference_ids = {selector.inference_id}
    else:
        assert selector.event_id is not None
        _match_event_id(connection, selector.event_id, matches)
    ids = sorted(matches.inference_ids)
    matches.feedback_ids |= _column(
        connection,
        "SELECT event_id FROM feedback WHERE inference_id IN (SELECT unnest(?::VARCHAR[]))",
        [ids],
    )
    matches.correction_ids |= _column(
        connection,
        "SELECT event_id FROM corrections WHERE inference_id IN (SELECT unnest(?::VARCHAR[]))",
        [ids],
    )
    matches.rejection_ids = _rejections(connection, matches, selector)
    return matches


def _match_event_id(
    connection: duckdb.DuckDBPyConnection, event_id: str, matches: StoredMatches
) -> None:
    """An event id names an inference (erased with what is attached), or one feedback or
    correction event; an id the store does not hold is erased as an inference id would be."""
    for event_type, table in ID_TABLES.items():
        if connection.execute(f"SELECT 1 FROM {table} WHERE event_id = ?", [event_id]).fetchone():
            if event_type == "feedback":
                matches.feedback_ids.add(event_id)
            elif event_type == "correction":
                matches.correction_ids.add(event_id)
            else:
                matches.inference_ids.add(event_id)
            return
    matches.inference_ids.add(event_id)


def _rejections(
    connection: duckdb.DuckDBPyConnection, matches: StoredMatches, selector: Selector
) -> set[str]:
    """Dead-letter rows holding an erased event, feedback on an erased inference, or (for a
    metadata selector) a rejected inference carrying the same metadata pair."""
    parameters: list[Any] = [sorted(matches.event_ids()), sorted(matches.inference_ids)]
    same_metadata = "FALSE"
    if selector.metadata is not None:
        same_metadata = "json_extract_string(payload, ['metadata', ?])[1] = ?"
        parameters += list(selector.metadata)
    return _column(
        connection,
        f"""
        WITH rows AS (
            SELECT rejection_id, event_id, try(json(try(decode(raw)))) AS payload
            FROM rejected_events
        )
        SELECT rejection_id FROM rows
        WHERE event_id IN (SELECT unnest(?::VARCHAR[]))
           OR json_extract_string(payload, '$.inference_id') IN (SELECT unnest(?::VARCHAR[]))
           OR {same_metadata}
        """,
        parameters,
    )


def delete_matches(connection: duckdb.DuckDBPyConnection, matches: StoredMatches) -> None:
    """Delete every matched row, and the regression-set entries and review items of the
    erased inferences. Call inside a transaction."""
    inference_ids = sorted(matches.inference_ids)
    deletions: list[tuple[str, list[Any]]] = [
        (
            "DELETE FROM feedback WHERE event_id IN (SELECT unnest(?::VARCHAR[]))",
            [sorted(matches.feedback_ids)],
        ),
        (
            "DELETE FROM corrections WHERE event_id IN (SELECT unnest(?::VARCHAR[]))",
            [sorted(matches.correction_ids)],
        ),
        ("DELETE FROM inferences WHERE event_id IN (SELECT unnest(?::VARCHAR[]))", [inference_ids]),
        (
            "DELETE FROM rejected_events WHERE rejection_id IN (SELECT unnest(?::VARCHAR[]))",
            [sorted(matches.rejection_ids)],
        ),
        (
            "DELETE FROM regression_examples WHERE inference_id IN (SELECT unnest(?::VARCHAR[]))",
            [inference_ids],
        ),
    ]
    row = connection.execute(
        "DELETE FROM review_items WHERE inference_id IN (SELECT unnest(?::VARCHAR[]))",
        [inference_ids],
    ).fetchone()
    matches.review_items = int(row[0]) if row else 0
    for sql, parameters in deletions:
        connection.execute(sql, parameters).fetchall()


def stored_counts(matches: StoredMatches, present: dict[str, set[str]]) -> dict[str, int]:
    """How many rows of each kind were really deleted (ids a selector named but the store
    never held are not counted)."""
    return {
        "inference": len(matches.inference_ids & present["inference"]),
        "feedback": len(matches.feedback_ids),
        "correction": len(matches.correction_ids),
        "review_item": matches.review_items,
        "dead_letter": len(matches.rejection_ids),
    }


def stored_inferences(connection: duckdb.DuckDBPyConnection, ids: set[str]) -> set[str]:
    return _column(
        connection,
        "SELECT event_id FROM inferences WHERE event_id IN (SELECT unnest(?::VARCHAR[]))",
        [sorted(ids)],
    )


def ground_truth_count(connection: duckdb.DuckDBPyConnection) -> int:
    row = connection.execute("SELECT count(*) FROM ground_truth").fetchone()
    return int(row[0]) if row else 0


def _column(connection: duckdb.DuckDBPyConnection, sql: str, parameters: list[Any]) -> set[str]:
    return {row[0] for row in connection.execute(sql, parameters).fetchall()}
