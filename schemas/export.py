"""JSON Schema export, so producers in any language can validate before they send."""

from __future__ import annotations

import json
from pathlib import Path

from schemas.events import EVENT_MODELS


def json_schemas() -> dict[str, dict]:
    """One JSON Schema (draft 2020-12) per event type, keyed by file name."""
    schemas = {}
    for event_type, model in EVENT_MODELS.items():
        schema = model.model_json_schema(mode="validation")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://flywheel.local/schemas/{event_type}.schema.json"
        schemas[f"{event_type}.schema.json"] = schema
    return schemas


def render(schema: dict) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def export_schemas(directory: Path) -> list[Path]:
    """Write every event's JSON Schema into ``directory``; returns the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in json_schemas().items():
        path = directory / name
        path.write_text(render(schema))
        written.append(path)
    return written
