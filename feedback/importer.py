"""Bulk import of the examples a business already has (JSONL of {"input", "output"}).

Each line becomes an inference event with ``origin="import"`` (ground truth as is) that goes
through the same topic and validation as live events, so a bad line lands in the dead-letter
table with its reason instead of vanishing. Event ids are content hashes, so importing the
same file twice stores each example once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from schemas import Invalid, parse_object
from schemas.topics import INFERENCE

IMPORT_BASE_MODEL = "human"


@dataclass(frozen=True, slots=True)
class ImportRecord:
    line_number: int
    topic: str
    key: bytes
    value: bytes
    problem: str | None
    """Why validation will reject it (it is still sent, so the dead-letter table has it)."""


def import_event_id(task: str, input_text: str, output_text: str) -> str:
    digest = hashlib.sha256(json.dumps([task, input_text, output_text]).encode()).hexdigest()
    return f"import-{digest[:32]}"


def import_records(
    lines: Iterable[str], *, task: str, source: str, now: datetime | None = None
) -> Iterator[ImportRecord]:
    """Turn JSONL lines into inference events for ``task``; blank lines are skipped."""
    occurred_at = (now or datetime.now(UTC)).isoformat()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            example = json.loads(line)
        except ValueError as error:
            raw = line.rstrip("\n").encode()
            yield ImportRecord(number, INFERENCE, task.encode(), raw, f"not JSON: {error}")
            continue
        event = _event(example, task=task, source=source, line=number, occurred_at=occurred_at)
        parsed = parse_object(event, expected_type="inference")
        problem = parsed.reason if isinstance(parsed, Invalid) else None
        value = json.dumps(event, ensure_ascii=False).encode()
        yield ImportRecord(number, INFERENCE, task.encode(), value, problem)


def _event(example: object, *, task: str, source: str, line: int, occurred_at: str) -> object:
    if not isinstance(example, dict):
        return example
    input_text, output_text = example.get("input"), example.get("output")
    event_id = (
        import_event_id(task, input_text, output_text)
        if isinstance(input_text, str) and isinstance(output_text, str)
        else f"import-line-{line}"
    )
    return {
        "type": "inference",
        "event_id": event_id,
        "occurred_at": occurred_at,
        "task": task,
        "input": input_text,
        "output": output_text,
        "base_model": IMPORT_BASE_MODEL,
        "origin": "import",
        "metadata": {"source": source[:200], "line": line},
    }
