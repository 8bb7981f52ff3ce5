"""Serialisation: UTF-8 JSON values, customer-id keys, schema and trace headers."""

from __future__ import annotations

import functools
import json
import math
import re
import uuid
from itertools import accumulate
from typing import Any, TypeVar, get_args

from pydantic import BaseModel, ValidationError

from topics.schemas import MAX_INT_DIGITS, MAX_JSON_DEPTH, Event, escape_surrogates

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


# A JSON string literal (escapes included); what lies outside them is structure.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
# The only way JSON text can carry a lone surrogate (may also match an escaped backslash: then the event is walked).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_BRACKET_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def json_depth(text: str) -> int:
    """How deeply the objects and arrays of JSON ``text`` nest (a top-level object is 1), without parsing it.

    Brackets inside strings do not count. Linear and recursion-free, so it is safe on
    input that would exhaust the parser's stack.
    """
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    return max(accumulate(map(_BRACKET_STEP.__getitem__, brackets)), default=0)


class _Refused(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@functools.lru_cache(maxsize=8)
def _decoder(max_int_digits: int) -> json.JSONDecoder:
    """A JSON decoder whose number hooks refuse what cannot be represented (built once per limit)."""

    def parse_int(literal: str) -> int:
        digits = len(literal) - literal.startswith("-")
        if digits > max_int_digits:
            raise _Refused("number_too_large", f"an integer has {digits} digits, the limit is {max_int_digits}")
        return int(literal)

    def parse_float(literal: str) -> float:
        number = float(literal)
        if not math.isfinite(number):
            shown = literal if len(literal) <= 40 else literal[:37] + "..."
            raise _Refused("number_too_large", f"the number {shown} is too large for a float")
        return number

    def parse_constant(name: str) -> float:
        raise _Refused("not_json", f"value is not JSON: {name} is not a JSON value")

    return json.JSONDecoder(parse_int=parse_int, parse_float=parse_float, parse_constant=parse_constant)


def parse_json(text: str, max_depth: int = MAX_JSON_DEPTH, max_int_digits: int = MAX_INT_DIGITS) -> Any:
    """``json.loads`` with limits checked before they can hurt: raises DecodeError.

    ``too_deep`` when objects and arrays nest deeper than ``max_depth``;
    ``number_too_large`` for an integer literal of more than ``max_int_digits``
    digits or a number too large for a float (``1e999``); ``not_json`` for
    anything else JSON does not allow, ``NaN`` and ``Infinity`` included.
    """
    # Counting brackets is cheap and settles almost every message; only the rest are scanned.
    if text.count("[") + text.count("{") > max_depth:
        depth = json_depth(text)
        if depth > max_depth:
            raise DecodeError("too_deep", f"JSON nests {depth} levels deep, the limit is {max_depth}")

    try:
        if text.startswith("\ufeff"):
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        return _decoder(max_int_digits).decode(text)
    except _Refused as exc:
        raise DecodeError(exc.reason, str(exc)) from None
    except json.JSONDecodeError as exc:
        raise DecodeError("not_json", f"value is not JSON: {exc}") from exc
    except RecursionError:  # not reachable within the depth limit; kept so nothing escapes as a crash
        raise DecodeError("too_deep", f"JSON nests deeper than the parser can follow (limit {max_depth})") from None


def decode(
    model: type[E],
    value: bytes | None,
    headers: Headers | None = None,
    max_bytes: int | None = None,
    max_depth: int = MAX_JSON_DEPTH,
    max_int_digits: int = MAX_INT_DIGITS,
) -> E:
    """Parse and validate one message; raises DecodeError with a precise reason.

    Whatever it returns, ``encode`` can write back out.
    """
    if value is None:
        raise DecodeError("not_json", "message has no value (tombstone)")
    if max_bytes is not None and len(value) > max_bytes:
        raise DecodeError("too_large", f"message is {len(value)} bytes, limit is {max_bytes}")
    version = headers_dict(headers).get(HEADER_VERSION)
    readable = sorted({*model.READS, model.VERSION})
    if version is not None and version not in {str(v) for v in readable}:
        raise DecodeError("unsupported_version", f"schema version {version!r}, this stage reads {', '.join(map(str, readable))}")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError("not_utf8", f"value is not UTF-8: {exc}{gb18030_hint(value)}") from exc
    data = parse_json(text, max_depth, max_int_digits)
    if not isinstance(data, dict):
        many = " (one event per message, not a list of events)" if isinstance(data, list) and data and isinstance(data[0], dict) else ""
        raise DecodeError("not_object", f"value is JSON {type(data).__name__}, expected an object{many}")
    try:
        context = {"max_depth": max_depth, "max_int_digits": max_int_digits, "parsed_within_limits": _SURROGATE_ESCAPE.search(text) is None}
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise DecodeError("schema_invalid", describe_validation_error(exc, model)) from exc


def gb18030_hint(value: bytes) -> str:
    """Chinese text that is not UTF-8 is most often GBK (GB18030 reads all of it): say so."""
    try:
        value.decode("gb18030")
    except UnicodeDecodeError:
        return ""
    return " (it reads as GBK/GB18030: send UTF-8)"


def describe_validation_error(exc: ValidationError, model: type[BaseModel] | None = None) -> str:
    """One line naming every bad field: 'customer.id: Field required; ...'.

    With ``model``, a field it does not know is followed by the fields it takes there
    ('payload.email.text: Extra inputs are not permitted (fields there: subject, body, …)'):
    an integrator who sent ``text`` to the e-mail channel learns what to send instead.
    Lone surrogates in field names are escaped, so the line can always be encoded.
    """
    parts = []
    for err, message in field_errors(exc, model):
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(escape_surrogates(f"{loc}: {message}"))
    return "; ".join(parts)


def field_errors(exc: ValidationError, model: type[BaseModel] | None = None) -> list[tuple[dict, str]]:
    """(pydantic error, message to show) for each bad field, with what to send instead where we know it;
    an error that only follows from another one is left out."""
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    bad_fields = {err["loc"][:1] for err in errors}
    shown = []
    for err in errors:
        if err["type"] == "union_tag_not_found" and ("channel",) in bad_fields:
            continue  # the payload's kind comes from the channel: a bad channel already says it all
        message = err["msg"]
        if err["type"] == "model_type" and model is not None:
            # pydantic says "a valid dictionary or instance of Customer": name the object's fields instead.
            fields = _fields_at(model, err["loc"])
            message = f"Input should be an object with the fields {', '.join(fields)}" if fields else message
        hint = (unknown_field_hint(model, err) if model is not None else "") + ERROR_HINTS.get(err["type"], "")
        shown.append((err, message + hint))
    return shown


# What to send instead, for the mistakes integrators make most.
ERROR_HINTS = {
    "timezone_aware": " (add the UTC offset, e.g. 2026-12-08T07:00:00+08:00)",
}


def unknown_field_hint(model: type[BaseModel], err: dict) -> str:
    """' (fields there: a, b)' for a pydantic error about a field ``model`` does not take there, else ''."""
    if err["type"] != "extra_forbidden":
        return ""
    fields = _fields_at(model, err["loc"][:-1])
    return f" (fields there: {', '.join(fields)})" if fields else ""


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The models an annotation names (``A | B | None``, ``list[A]``, ``Annotated[...]``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """The field names of the model at ``loc`` of a validation error, [] when it is not one model.

    A step is a field name, a list index, or the tag pydantic puts in the path of a discriminated
    union member (``payload.email``: the member whose ``kind`` is ``email``)."""
    candidates = [model]
    for step in loc:
        if isinstance(step, int):
            continue
        owner = next((m for m in candidates if step in m.model_fields), None)
        if owner is not None:
            candidates = _models_in(owner.model_fields[step].annotation)
        else:
            candidates = [m for m in candidates if "kind" in m.model_fields and m.model_fields["kind"].default == step]
    return [name for name in candidates[0].model_fields if name != "kind"] if len(candidates) == 1 else []
