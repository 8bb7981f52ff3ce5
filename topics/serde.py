"""Serialisation: UTF-8 JSON values, customer-id keys, schema and trace headers."""

from __future__ import annotations

import json
import uuid
from typing import TypeVar

from pydantic import ValidationError

from topics.schemas import Event

E = TypeVar("E", bound=Event)

HEADER_SCHEMA = "schema"
HEADER_VERSION = "schema_version"
HEADER_TRACE = "trace_id"
HEADER_CONTENT_TYPE = "content_type"

Headers = list[tuple[str, bytes]]


class DecodeError(ValueError):
    """A message that cannot become an event; ``reason`` is a DeadLetterReason value."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def encode(event: Event) -> bytes:
    return event.model_dump_json(exclude_none=False).encode("utf-8")


def encode_key(key: str | None) -> bytes | None:
    return key.encode("utf-8") if key is not None else None


def make_headers(event: Event, trace_id: str | None = None) -> Headers:
    return [
        (HEADER_SCHEMA, event.SCHEMA.encode()),
        (HEADER_VERSION, str(event.VERSION).encode()),
        (HEADER_TRACE, (trace_id or uuid.uuid4().hex).encode()),
        (HEADER_CONTENT_TYPE, b"application/json"),
    ]


def headers_dict(headers: Headers | None) -> dict[str, str]:
    return {k: v.decode("utf-8", "replace") for k, v in (headers or [])}


def decode(model: type[E], value: bytes | None, headers: Headers | None = None, max_bytes: int | None = None) -> E:
    """Parse and validate one message; raises DecodeError with a precise reason."""
    if value is None:
        raise DecodeError("not_json", "message has no value (tombstone)")
    if max_bytes is not None and len(value) > max_bytes:
        raise DecodeError("too_large", f"message is {len(value)} bytes, limit is {max_bytes}")
    version = headers_dict(headers).get(HEADER_VERSION)
    if version is not None and version != str(model.VERSION):
        raise DecodeError("unsupported_version", f"schema version {version!r}, this stage reads {model.VERSION}")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError("not_utf8", f"value is not UTF-8: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DecodeError("not_json", f"value is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise DecodeError("not_object", f"value is JSON {type(data).__name__}, expected an object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise DecodeError("schema_invalid", describe_validation_error(exc)) from exc


def describe_validation_error(exc: ValidationError) -> str:
    """One line naming every bad field: 'customer.id: Field required; ...'."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)
