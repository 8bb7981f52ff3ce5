"""HTTP ingest: channel integrations POST raw feedback; 202 only once the broker has it (acks=all).

``create_app`` takes the settings, a producer (kafka-python ``KafkaProducer``
built with acks=all, or anything with its ``send``/``flush``) and a readiness
probe, so tests and deployments choose the real parts they run against.

A failed or timed-out send answers 503 and throws the producer away, as the
stream runtime does: a producer the broker has forgotten (the embedded broker
restarted) never recovers. The next request provisions the missing topics
(a restarted in-memory broker lost feedback.raw) and makes a new producer
with ``producer_factory``.
"""

from __future__ import annotations

import json
import logging
import secrets
import socket
import threading
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from kafka.errors import KafkaError
from pydantic import BaseModel, ValidationError

from consumers.faults import describe, needs_new_producer
from consumers.kafka_io import close_now, make_producer, send
from topics.admin import BrokerUnreachable, ensure_topics
from topics.schemas import MAX_JSON_DEPTH, RawFeedback, escape_surrogates
from topics.serde import DecodeError, encode, field_errors, gb18030_hint, parse_json
from topics.settings import Settings
from topics.specs import RAW

log = logging.getLogger(__name__)

ReadinessProbe = Callable[[], str | None]
"""Returns None when ready, else why not (e.g. 'broker unreachable: …')."""


class Accepted(BaseModel):
    accepted: int
    event_ids: list[str]


class Problem(BaseModel):
    detail: Any


class _BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """Refuses bodies over the limit with 413, by Content-Length or while streaming (chunked uploads)."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send_):
        if scope["type"] != "http":
            return await self.app(scope, receive, send_)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await _too_large(send_, self.max_bytes)
        seen = 0
        started = False

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _BodyTooLarge()
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send_(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await _too_large(send_, self.max_bytes)


async def _too_large(send_, limit: int) -> None:
    body = json.dumps({"detail": f"request body is larger than {limit} bytes"}).encode()
    await send_({"type": "http.response.start", "status": 413, "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send_({"type": "http.response.body", "body": body})


def _request_schema() -> tuple[dict[str, Any], dict[str, Any]]:
    """The request body's JSON Schema (one event or a list) and the component schemas it refers to."""
    schema = RawFeedback.model_json_schema(ref_template="#/components/schemas/{model}")
    components = schema.pop("$defs", {})
    components["RawFeedback"] = schema
    ref = {"$ref": "#/components/schemas/RawFeedback"}
    return {"oneOf": [ref, {"type": "array", "items": ref, "minItems": 1}]}, components


def _validation_errors(items: list[Any], batch: bool) -> tuple[list[RawFeedback], list[dict[str, Any]]]:
    """Validate every item; each error names its field, e.g. ``body.2.customer.id`` in a batch."""
    events, errors = [], []
    for index, item in enumerate(items):
        try:
            events.append(RawFeedback.model_validate(item))
        except ValidationError as exc:
            for err, msg in field_errors(exc, RawFeedback):
                # A field name may hold a lone surrogate: escaped, so the response can be encoded.
                loc = ["body", *([index] if batch else []), *(escape_surrogates(p) if isinstance(p, str) else p for p in err["loc"])]
                field = ".".join(str(p) for p in loc[1:]) or "(root)"
                errors.append({"loc": loc, "field": field, "msg": escape_surrogates(msg), "type": err["type"], "reason": "schema_invalid"})
    return events, errors


def _body_problem(reason: str, message: str) -> JSONResponse:
    """422 for a body that is no JSON the stages would read, with the stages' dead-letter reason."""
    kind = "json_invalid" if reason == "not_json" else reason
    message = message.replace("value is not", "body is not", 1)
    return JSONResponse({"detail": [{"loc": ["body"], "field": "", "msg": escape_surrogates(message), "type": kind, "reason": reason}]}, status_code=422)


def _content_type_problem(header: str | None) -> str | None:
    """Why the Content-Type is not JSON in UTF-8, or None: application/json or application/*+json, charset utf-8 if named."""
    if not header:
        return "no Content-Type; send application/json"
    media_type, _, params = header.partition(";")
    media_type = media_type.strip().lower()
    if not (media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))):
        return f"Content-Type {media_type!r} is not supported; send application/json"
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            return f"charset {value.strip()!r} is not supported; JSON is sent as UTF-8"
    return None


def _require_acks_all(producer) -> None:
    # 202 promises durability: only a producer that waits for all in-sync replicas may back it.
    if getattr(producer, "config", {}).get("acks") not in (-1, "all"):
        raise ValueError("the ingest producer must be built with acks=all (consumers.kafka_io.make_producer)")


class _ProducerSlot:
    """The ingest's current producer: thrown away after a failed send, remade (topics provisioned first) on next use.

    The producer given to ``create_app`` belongs to the caller; those made here are closed at shutdown.
    """

    def __init__(self, producer, factory: Callable[[], Any], provision_topics: Callable[[], object], close_timeout_s: float):
        self._producer = producer
        self._close_timeout_s = close_timeout_s
        self._given = producer
        self._factory = factory
        self._provision_topics = provision_topics
        self._lock = threading.Lock()

    def get(self):
        with self._lock:
            if self._producer is None:
                # Provisioned before the new producer names the topic: a broker that auto-creates
                # what clients name (Tansu) would otherwise create it with its own partition count.
                try:
                    self._provision_topics()
                except Exception as exc:  # noqa: BLE001 - no admin rights, or the broker still down: the send will tell
                    log.warning("ingest: provisioning topics failed: %s", describe(exc))
                producer = self._factory()
                _require_acks_all(producer)
                self._producer = producer
                log.info("ingest: new producer ready")
            return self._producer

    def discard(self, producer, exc: BaseException) -> None:
        """Throw ``producer`` away after it failed (unless another request already replaced it)."""
        with self._lock:
            if producer is not self._producer:
                return
            self._producer = None
        if needs_new_producer(exc):
            log.warning("ingest: the broker lost this producer's state (restarted?); the next request makes a new one")
        else:
            log.warning("ingest: send failed (%s); the next request makes a new producer", describe(exc))
        close_now(producer)  # drops what it still holds: those requests got 503 and are retried

    def close(self) -> None:
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None and producer is not self._given:
            try:
                producer.close(timeout=self._close_timeout_s)
            except Exception as exc:  # noqa: BLE001 - shutting down
                log.warning("ingest: producer close failed: %s", describe(exc))


def create_app(
    settings: Settings,
    producer,
    readiness: ReadinessProbe,
    producer_factory: Callable[[], Any] | None = None,
    provision_topics: Callable[[], object] | None = None,
) -> FastAPI:
    """``producer_factory`` makes a replacement after a failed send (default ``make_producer(settings)``);
    ``provision_topics`` runs before it (default ``topics.admin.ensure_topics(settings)``)."""
    ingest = settings.channels.ingest
    tokens = [token.get_secret_value() for token in ingest.tokens if token.get_secret_value()]
    if not tokens:
        raise ValueError("no ingest token configured (set FEEDBACK_MINER_CHANNELS__INGEST__TOKENS, a JSON list)")
    _require_acks_all(producer)
    producers = _ProducerSlot(
        producer,
        producer_factory or (lambda: make_producer(settings)),
        provision_topics or (lambda: ensure_topics(settings)),
        close_timeout_s=ingest.ack_timeout_s,
    )
    topic = settings.topic(RAW)
    bearer = HTTPBearer(auto_error=False, description="One of channels.ingest.tokens")
    request_schema, components = _request_schema()

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        await run_in_threadpool(producers.close)

    app = FastAPI(
        title="feedback-miner ingest",
        version="1",
        description="Publish raw customer feedback (email, social, app) to feedback.raw.",
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimitMiddleware, max_bytes=ingest.max_body_bytes)

    def authorised(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        presented = credentials.credentials if credentials and credentials.scheme.lower() == "bearer" else ""
        # Compare against every token so timing does not reveal which one nearly matched.
        if not any([secrets.compare_digest(presented.encode(), token.encode()) for token in tokens]):
            raise HTTPException(401, "missing or invalid bearer token", headers={"WWW-Authenticate": "Bearer"})

    def produce_and_wait(events: list[RawFeedback]) -> None:
        current = producers.get()  # BrokerUnreachable when a new one cannot reach the broker
        try:
            futures = [send(current, topic, event, event.key()) for event in events]
            current.flush(timeout=ingest.ack_timeout_s)
            for future in futures:
                future.get(timeout=ingest.ack_timeout_s)
        except KafkaError as exc:
            # A failed producer may hold expired batches or state a restarted broker forgot: start clean.
            producers.discard(current, exc)
            raise

    @app.post(
        "/v1/feedback",
        status_code=202,
        response_model=Accepted,
        dependencies=[Depends(authorised)],
        responses={
            401: {"model": Problem, "description": "no or wrong bearer token"},
            413: {"model": Problem, "description": "body over channels.ingest.max_body_bytes"},
            415: {"model": Problem, "description": "Content-Type is not application/json (or application/*+json) in UTF-8"},
            422: {
                "model": Problem,
                "description": "not UTF-8 JSON, nested too deep, a number too large, or not a valid event; each error names its field and "
                "carries the stages' dead-letter reason (not_utf8, not_json, not_object, too_deep, number_too_large, schema_invalid)",
            },
            503: {"model": Problem, "description": "the broker did not acknowledge; nothing to assume, retry"},
        },
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": request_schema}}}},
        summary="Publish one raw feedback event or a batch",
    )
    async def post_feedback(request: Request) -> Accepted:
        unsupported = _content_type_problem(request.headers.get("content-type"))
        if unsupported:
            return JSONResponse({"detail": unsupported}, status_code=415)
        raw = await request.body()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            return _body_problem("not_utf8", f"body is not UTF-8: {exc}{gb18030_hint(raw)}")
        # The limits the stages apply (topics.serde.decode), checked before parsing; a batch adds one level.
        batch = text.lstrip().startswith("[")
        try:
            data = parse_json(text, max_depth=MAX_JSON_DEPTH + batch)
        except DecodeError as exc:
            note = " (a batch's array counts as one level)" if batch and exc.reason == "too_deep" else ""
            return _body_problem(exc.reason, f"{exc}{note}")
        if not isinstance(data, dict | list):
            return _body_problem("not_object", f"body is JSON {type(data).__name__}, expected an object or an array of objects")
        items = data if isinstance(data, list) else [data]
        if not items:
            return _body_problem("schema_invalid", "empty batch: send at least one event")
        if len(items) > ingest.max_batch_events:
            return JSONResponse({"detail": f"batch of {len(items)} events; the limit is {ingest.max_batch_events}"}, status_code=413)
        events, errors = _validation_errors(items, isinstance(data, list))
        if errors:
            return JSONResponse({"detail": errors}, status_code=422)
        # The stages refuse events over runtime.max_event_bytes; say so now rather than dead-letter later.
        limit = settings.runtime.max_event_bytes
        oversized = [index for index, event in enumerate(events) if len(encode(event)) > limit]
        if oversized:
            return JSONResponse({"detail": f"events {oversized} are larger than {limit} bytes once encoded"}, status_code=413)
        try:
            await run_in_threadpool(produce_and_wait, events)
        except (KafkaError, BrokerUnreachable) as exc:
            log.error("ingest: broker did not acknowledge %d events: %s", len(events), describe(exc))
            return JSONResponse({"detail": f"broker did not acknowledge: {type(exc).__name__}"}, status_code=503)
        return Accepted(accepted=len(events), event_ids=[event.event_id for event in events])

    @app.get("/healthz", summary="The process is alive")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="The broker is reachable and the raw topic exists", responses={503: {"model": Problem}})
    async def readyz():
        problem = await run_in_threadpool(readiness)
        if problem:
            return JSONResponse({"status": "unavailable", "detail": problem}, status_code=503)
        return {"status": "ready"}

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            schema.setdefault("components", {}).setdefault("schemas", {}).update(components)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi
    return app


def _tcp_reachable(bootstrap_servers: str, timeout_s: float) -> str | None:
    """None if any bootstrap server accepts a connection, else the last error (fails fast, unlike a client)."""
    error = "no bootstrap servers"
    for server in bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or "localhost", int(port)), timeout=timeout_s):
                return None
        except (OSError, ValueError) as exc:
            error = f"{server}: {exc}"
    return error


def broker_readiness(settings: Settings, timeout_s: float = 2.0) -> ReadinessProbe:
    """A probe: a bootstrap server accepts connections and lists the raw topic (fresh admin client each time)."""
    from topics.admin import admin_client

    topic = settings.topic(RAW)

    def probe() -> str | None:
        unreachable = _tcp_reachable(settings.kafka.bootstrap_servers or "", timeout_s)
        if unreachable:
            return f"broker unreachable: {unreachable}"
        try:
            admin = admin_client(settings)
        except KafkaError as exc:
            return f"broker unreachable: {type(exc).__name__}"
        try:
            if topic not in set(admin.list_topics()):
                return f"topic {topic!r} does not exist"
            return None
        except KafkaError as exc:
            return f"broker unreachable: {type(exc).__name__}"
        finally:
            admin.close()

    return probe
