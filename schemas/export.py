"""JSON Schema export, so producers in any language can validate before they send."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from schemas.events import EVENT_MODELS


class ContractJsonSchema(GenerateJsonSchema):
    """pydantic's generator, with constrained dict keys constraining every key.

    pydantic turns a key pattern into ``patternProperties``, which only says what the values
    of matching keys look like: a key that fails the pattern (a NUL byte in a metadata key)
    still passes the schema, and the service refused it. Here the pattern joins the other key
    constraints in ``propertyNames`` and the values schema applies to every key."""

    def dict_schema(self, schema: core_schema.DictSchema) -> JsonSchemaValue:
        json_schema = super().dict_schema(schema)
        patterns = json_schema.pop("patternProperties", None)
        if patterns:
            [(pattern, values)] = patterns.items()
            json_schema["additionalProperties"] = values
            json_schema["propertyNames"] = {
                **json_schema.get("propertyNames", {}),
                "pattern": pattern,
            }
        return json_schema


def json_schemas() -> dict[str, dict]:
    """One JSON Schema (draft 2020-12) per event type, keyed by file name."""
    schemas = {}
    for event_type, model in EVENT_MODELS.items():
        schema = model.model_json_schema(mode="validation", schema_generator=ContractJsonSchema)
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
