"""A failed producer is closed at once: its I/O thread does not live on retrying what it held."""

from __future__ import annotations

import os
import signal
import time

from consumers.kafka_io import close_now, make_producer
from topics.admin import ensure_topics
from topics.embedded import EmbeddedBroker
from topics.settings import Settings


def test_a_producer_holding_batches_for_a_frozen_broker_closes_with_its_thread(own_broker: EmbeddedBroker, tmp_path) -> None:
    settings = Settings(kafka={"bootstrap_servers": own_broker.bootstrap_servers}, data_dir=tmp_path)
    ensure_topics(settings)
    topic = settings.topic("feedback.raw")
    producer = make_producer(settings, request_timeout_ms=30_000, retries=1_000)
    producer.send(topic, b"before").get(timeout=10)
    sender = producer._sender
    os.kill(own_broker.pid, signal.SIGSTOP)
    try:
        future = producer.send(topic, b"held")
        time.sleep(0.5)
        assert not future.is_done and sender.is_alive()
        started = time.monotonic()
        close_now(producer)
        assert time.monotonic() - started < 10
        assert not sender.is_alive()
        assert future.is_done and future.failed()  # dropped, not delivered later behind the caller's back
    finally:
        os.kill(own_broker.pid, signal.SIGCONT)
