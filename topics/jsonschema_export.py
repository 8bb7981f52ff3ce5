"""Export the event schemas as JSON Schema files for integrators."""

from __future__ import annotations

import json
from pathlib import Path

from topics.schemas import ALL_EVENT_MODELS, Event


def json_schema(model: type[Event]) -> dict:
    schema = model.model_json_schema()
    schema["$id"] = f"{model.SCHEMA}/v{model.VERSION}"
    return schema


def schema_filename(model: type[Event]) -> str:
    return f"{model.SCHEMA}.v{model.VERSION}.json"


def write_json_schemas(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for model in ALL_EVENT_MODELS:
        path = out_dir / schema_filename(model)
        path.write_text(json.dumps(json_schema(model), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        paths.append(path)
    return paths
