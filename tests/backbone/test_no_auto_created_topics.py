"""Our clients never create a topic by naming it: Tansu auto-creates any topic a metadata request names.

A restarted embedded broker (memory storage) has lost every topic; a producer or consumer that named one
would recreate it with Tansu's partition count before the stage runtime or the ingest provisions it.
"""

from __future__ import annotations

import pytest
from kafka.errors import KafkaTimeoutError

from consumers.kafka_io import make_consumer, make_producer, subscribe_without_creating
from topics.admin import admin_client, describe_topics, ensure_topics
from topics.settings import Settings
from topics.specs import TopicSpec

pytestmark = pytest.mark.broker


def _existing(settings: Settings, name: str) -> int | None:
    admin = admin_client(settings)
    try:
        topic = describe_topics(admin, [name]).get(name)
        return topic.partitions if topic else None
    finally:
        admin.close()


def test_a_send_to_a_missing_topic_fails_and_leaves_it_missing(kafka_settings: Settings) -> None:
    missing = kafka_settings.topic("never.provisioned")
    producer = make_producer(kafka_settings, max_block_ms=1500)
    try:
        with pytest.raises(KafkaTimeoutError):
            producer.send(missing, value=b"x").get(timeout=5)
    finally:
        producer.close(timeout=2)
    assert _existing(kafka_settings, missing) is None


def test_a_subscribed_consumer_and_a_reader_leave_a_missing_topic_missing(kafka_settings: Settings) -> None:
    missing = kafka_settings.topic("never.provisioned")
    consumer = make_consumer(kafka_settings, kafka_settings.kafka.group_prefix + "-missing")
    reader = make_consumer(kafka_settings, None, topics=[missing])
    try:
        subscribe_without_creating(consumer, missing)
        for _ in range(6):
            consumer.poll(timeout_ms=500)
            reader.poll(timeout_ms=100)
        assert consumer.assignment() == set()
    finally:
        consumer.close()
        reader.close()
    assert _existing(kafka_settings, missing) is None
    # The check itself can see a topic that exists.
    ensure_topics(kafka_settings, specs=[TopicSpec(missing, 5, 1, 60_000)])
    assert _existing(kafka_settings, missing) == 5
