"""The HTTP ingest endpoint against the real broker (FastAPI TestClient, real KafkaProducer with acks=all)."""

from __future__ import annotations

import contextlib
import time

import pytest
from fastapi.testclient import TestClient
from kafka.errors import KafkaTimeoutError

from consumers.kafka_io import make_producer, read_topic
from pipelines.ingest_api import broker_readiness, create_app
from topics.embedded import EmbeddedBroker, free_port
from topics.schemas import RawFeedback
from topics.serde import decode
from tests.normalizer.ingest_factories import AUTH, TOKEN, event, with_ingest

pytestmark = pytest.mark.broker



@pytest.fixture
def ingest(kafka_settings):
    settings = with_ingest(kafka_settings, tokens=[TOKEN, "other-token"], max_body_bytes=4096, max_batch_events=5)
    producer = make_producer(settings)
    with TestClient(create_app(settings, producer, broker_readiness(settings))) as client:
        yield client, settings
    producer.close()


def test_auth_is_required(ingest) -> None:
    client, _ = ingest
    assert client.post("/v1/feedback", json=event("a")).status_code == 401
    response = client.post("/v1/feedback", json=event("a"), headers={"Authorization": "Bearer wrong"})
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    assert client.post("/v1/feedback", json=event("a"), headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401


def test_invalid_bodies_get_422_naming_the_field(ingest) -> None:
    client, _ = ingest
    response = client.post("/v1/feedback", content=b"{not json", headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 422 and "not JSON" in response.json()["detail"][0]["msg"]

    missing = event("a")
    del missing["customer"]
    response = client.post("/v1/feedback", json=missing, headers=AUTH)
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["detail"]] == ["customer"]

    response = client.post("/v1/feedback", json=[event("a"), event("b", payload={"text": "x", "rating": 9})], headers=AUTH)
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["detail"]] == ["1.payload.app.rating"]
    assert client.post("/v1/feedback", json=[], headers=AUTH).status_code == 422


def test_oversized_bodies_and_batches_get_413(ingest) -> None:
    client, _ = ingest
    big = event("big", payload={"text": "长" * 3000})
    assert client.post("/v1/feedback", json=big, headers=AUTH).status_code == 413

    def chunks():  # no Content-Length: the limit is enforced while reading
        for _ in range(10):
            yield b" " * 1000

    assert client.post("/v1/feedback", content=chunks(), headers={**AUTH, "Content-Type": "application/json"}).status_code == 413
    response = client.post("/v1/feedback", json=[event(f"e{i}") for i in range(6)], headers=AUTH)
    assert response.status_code == 413 and "limit is 5" in response.json()["detail"]


def test_events_over_the_stage_limit_get_413(kafka_settings) -> None:
    settings = with_ingest(kafka_settings, tokens=[TOKEN]).model_copy(
        update={"runtime": kafka_settings.runtime.model_copy(update={"max_event_bytes": 1024})}
    )
    producer = make_producer(settings)
    try:
        client = TestClient(create_app(settings, producer, lambda: None))
        response = client.post("/v1/feedback", json=[event("small"), event("big", payload={"text": "长" * 400})], headers=AUTH)
        assert response.status_code == 413 and "events [1]" in response.json()["detail"]
        assert read_topic(settings, "feedback.raw") == []  # nothing of the batch was published
    finally:
        producer.close()


def test_accepted_events_are_on_the_raw_topic(ingest) -> None:
    client, settings = ingest
    one = client.post("/v1/feedback", json=event("one"), headers=AUTH)
    assert one.status_code == 202 and one.json() == {"accepted": 1, "event_ids": ["one"]}
    no_id = event("x")
    del no_id["event_id"]
    batch = client.post("/v1/feedback", json=[event("two", customer={"id": "c2"}), no_id], headers={"Authorization": "Bearer other-token"})
    assert batch.status_code == 202
    generated = batch.json()["event_ids"][1]
    assert batch.json()["event_ids"][0] == "two" and len(generated) == 32
    on_topic = {decode(RawFeedback, r.value).event_id: r.key for r in read_topic(settings, "feedback.raw")}
    assert on_topic == {"one": b"c1", "two": b"c2", generated: b"c1"}


def test_health_readiness_and_openapi(ingest) -> None:
    client, _ = ingest
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/v1/feedback"]["post"]
    assert set(operation["responses"]) >= {"202", "401", "413", "422", "503"}
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body["oneOf"][0] == {"$ref": "#/components/schemas/RawFeedback"}
    assert {"RawFeedback", "AppPayload", "EmailPayload", "SocialPayload", "Customer"} <= set(spec["components"]["schemas"])
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_no_token_or_a_weak_producer_refuses_to_start(kafka_settings) -> None:
    with pytest.raises(ValueError, match="no ingest token"):
        create_app(kafka_settings, producer=None, readiness=lambda: None)
    producer = make_producer(kafka_settings, acks=1)
    try:
        with pytest.raises(ValueError, match="acks=all"):
            create_app(with_ingest(kafka_settings, tokens=[TOKEN]), producer, readiness=lambda: None)
    finally:
        producer.close()


def test_broker_gone_means_503_and_not_ready(kafka_settings, tmp_path) -> None:
    """A broker of its own, stopped after start: nothing is acknowledged, so nothing is claimed."""
    from topics.admin import ensure_topics

    with EmbeddedBroker(log_path=tmp_path / "b.log") as own:
        settings = with_ingest(kafka_settings, tokens=[TOKEN], ack_timeout_s=1)
        settings = settings.model_copy(update={
            "kafka": settings.kafka.model_copy(update={"bootstrap_servers": own.bootstrap_servers, "request_timeout_ms": 2000}),
        })
        ensure_topics(settings)
        producer = make_producer(settings, max_block_ms=2000, retries=0)
        client = TestClient(create_app(settings, producer, broker_readiness(settings)))
        assert client.post("/v1/feedback", json=event("before"), headers=AUTH).status_code == 202
    # The broker is stopped now.
    started = time.monotonic()
    response = client.post("/v1/feedback", json=event("after"), headers=AUTH)
    assert response.status_code == 503 and "did not acknowledge" in response.json()["detail"]
    assert client.get("/readyz").status_code == 503
    assert time.monotonic() - started < 30
    with contextlib.suppress(KafkaTimeoutError):  # records still queued for the dead broker
        producer.close(timeout=1)
    closed = settings.model_copy(update={"kafka": settings.kafka.model_copy(update={"bootstrap_servers": f"127.0.0.1:{free_port()}"})})
    assert "unreachable" in (broker_readiness(closed)() or "")


def test_serve_ingest_without_a_token_fails_at_once() -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDBACK_MINER_")}
    env["FEEDBACK_MINER_KAFKA__BOOTSTRAP_SERVERS"] = f"127.0.0.1:{free_port()}"
    result = subprocess.run([sys.executable, "-m", "pipelines", "serve", "ingest"], env=env, capture_output=True, timeout=60)
    assert result.returncode == 2
    assert "no ingest token configured" in result.stderr.decode()
