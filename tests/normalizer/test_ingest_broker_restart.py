"""The HTTP ingest rides out a broker restart (the embedded broker keeps everything in memory).

A restart loses the topics and the idempotent producer's state: the ingest's producer
must be replaced after a failed send and feedback.raw provisioned again, so that the
next requests are acknowledged. While the broker is away a POST answers 503 with a
JSON error (the client retries); a 202 still means the event is on the topic.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from kafka.producer.sender import Sender

from consumers.kafka_io import make_producer, read_topic
from pipelines.ingest_api import broker_readiness, create_app
from tests.normalizer.ingest_factories import AUTH, TOKEN, event, with_ingest
from topics.admin import admin_client, describe_topics, ensure_topics
from topics.embedded import EmbeddedBroker
from topics.schemas import RawFeedback
from topics.serde import decode
from topics.settings import Settings
from topics.specs import RAW

pytestmark = pytest.mark.broker

RECOVERY_S = 30.0


@pytest.fixture
def settings(own_broker: EmbeddedBroker, tmp_path: Path) -> Settings:
    base = Settings(
        kafka={
            "bootstrap_servers": own_broker.bootstrap_servers,
            "topic_prefix": "r.",
            "group_prefix": "r",
            "request_timeout_ms": 3000,
            "connect_timeout_s": 3,
        },
        store={"url": f"sqlite:///{tmp_path / 'store.db'}"},
        data_dir=tmp_path,
    )
    settings = with_ingest(base, tokens=[TOKEN], ack_timeout_s=3)
    ensure_topics(settings)
    return settings


def _raw_ids(settings: Settings) -> list[str]:
    return [decode(RawFeedback, r.value).event_id for r in read_topic(settings, RAW)]


def _raw_partitions(settings: Settings) -> int | None:
    admin = admin_client(settings)
    try:
        topic = describe_topics(admin, [settings.topic(RAW)]).get(settings.topic(RAW))
        return topic.partitions if topic else None
    finally:
        admin.close()


def _producer_threads() -> int:
    """Producers still running (each has an I/O thread)."""
    return sum(isinstance(t, Sender) and t.is_alive() for t in threading.enumerate())


def _post_until_accepted(client: TestClient, body: dict, deadline_s: float) -> tuple[int, list[int]]:
    """POST the same event until 202 (as a retrying client does); every other answer must be a JSON 503."""
    started = time.monotonic()
    statuses = []
    while True:
        response = client.post("/v1/feedback", json=body, headers=AUTH)
        statuses.append(response.status_code)
        if response.status_code == 202:
            assert response.json() == {"accepted": 1, "event_ids": [body["event_id"]]}
            return len(statuses), statuses
        assert response.status_code == 503, response.text
        assert "did not acknowledge" in response.json()["detail"]
        assert time.monotonic() - started < deadline_s, f"no 202 within {deadline_s} s: {statuses}"
        time.sleep(0.5)


def test_ingest_recovers_after_the_broker_restarts_on_the_same_port(own_broker: EmbeddedBroker, settings: Settings) -> None:
    running = _producer_threads()
    producer = make_producer(settings)
    with TestClient(create_app(settings, producer, broker_readiness(settings))) as client:
        assert client.post("/v1/feedback", json=event("before"), headers=AUTH).status_code == 202
        assert _raw_ids(settings) == ["before"]

        own_broker.stop()
        own_broker.start()  # same port, empty: no topics, no producer state

        started = time.monotonic()
        _post_until_accepted(client, event("after-1"), RECOVERY_S)
        assert time.monotonic() - started < RECOVERY_S
        # Recovered for good: the following requests are acknowledged at once.
        for i in range(2, 5):
            response = client.post("/v1/feedback", json=event(f"after-{i}", customer={"id": f"c{i}"}), headers=AUTH)
            assert response.status_code == 202, response.text
        assert client.get("/readyz").json() == {"status": "ready"}

        # Every accepted event is on the topic the restarted broker holds; the topic was provisioned as specified.
        assert set(_raw_ids(settings)) == {"after-1", "after-2", "after-3", "after-4"}
        assert _raw_partitions(settings) == settings.kafka.default_partitions
        # The failed producer was closed, not left retrying in the background: one producer runs.
        assert _producer_threads() == running + 1
    # The app closes the producer it made at shutdown; the one given to it was closed when it failed.
    assert _producer_threads() == running
    producer.close()  # its owner's close: already closed, returns at once


def test_ingest_answers_503_while_the_broker_is_down_then_recovers(own_broker: EmbeddedBroker, settings: Settings) -> None:
    running = _producer_threads()
    producer = make_producer(settings)
    with TestClient(create_app(settings, producer, broker_readiness(settings))) as client:
        assert client.post("/v1/feedback", json=event("before"), headers=AUTH).status_code == 202

        own_broker.stop()
        for i in range(2):  # the failed producer is replaced; with no broker the new one fails fast too
            started = time.monotonic()
            response = client.post("/v1/feedback", json=event(f"down-{i}"), headers=AUTH)
            assert response.status_code == 503 and "did not acknowledge" in response.json()["detail"]
            assert time.monotonic() - started < 15
        assert client.get("/readyz").status_code == 503

        own_broker.start()
        _post_until_accepted(client, event("down-0"), RECOVERY_S)  # the client's retry of a refused event
        assert _raw_ids(settings) == ["down-0"]
    assert _producer_threads() == running
    producer.close()
