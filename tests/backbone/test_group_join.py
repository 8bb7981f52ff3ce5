"""A group join that finishes between two polls is collected, not thrown away.

kafka-python 3.0 discarded a JoinGroup/SyncGroup round that completed while the caller was not inside
``poll`` and sent a new JoinGroup. A group leader's new JoinGroup starts another rebalance, so a stage
whose join kept finishing between polls (slow metadata answers on a busy broker) never got its
partitions back after a rebalance. ``consumers.kafka_group_join`` collects the finished round.
"""

from __future__ import annotations

import logging
import time

import pytest

from consumers.kafka_io import make_consumer, subscribe_without_creating
from topics.settings import Settings
from topics.specs import RAW

pytestmark = pytest.mark.broker


def test_a_join_finished_between_polls_is_collected(kafka_settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="kafka.coordinator")
    consumer = make_consumer(kafka_settings, kafka_settings.group_id("join-between-polls"))
    try:
        subscribe_without_creating(consumer, kafka_settings.topic(RAW))
        deadline = time.monotonic() + 30
        while not consumer.assignment() and time.monotonic() < deadline:
            # Too short to wait for the JoinGroup/SyncGroup round trip: it finishes between polls.
            consumer.poll(timeout_ms=100)
            time.sleep(0.3)
        rounds = sum("(Re-)joining group" in r.getMessage() for r in caplog.records)
        assert consumer.assignment(), f"never joined in 30 s ({rounds} join rounds sent)"
        # The first round that finished was the one collected, not followed by new JoinGroups.
        assert rounds <= 2
    finally:
        consumer.close()
