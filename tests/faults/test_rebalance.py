"""A rebalance in the middle of a batch loses nothing.

On revocation the runtime drops its uncommitted batch (kafka-python runs the
listener on its IO thread, where it cannot commit): the messages must be read
again from the last commit. kafka-python keeps a partition's fetch position
when the rebalance gives the partition back to the same member, so the runtime
re-reads every assigned partition from its committed offset after each
assignment; without that, the dropped messages of the partitions it kept were
skipped for good.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from consumers.kafka_io import read_topic
from consumers.normalizer import NormalizerStage
from consumers.runtime import StreamRuntime
from tests.faults.streams import StageThread, fault_settings, publish_raw, raw_events, read_events, wait_for
from topics.schemas import DeadLetter, NormalizedFeedback
from topics.settings import Settings
from topics.specs import DEADLETTER, NORMALIZED, RAW

pytestmark = pytest.mark.broker


def test_a_batch_dropped_on_rebalance_is_read_again(kafka_settings: Settings) -> None:
    events = raw_events(90, "rb")
    publish_raw(kafka_settings, RAW, events)
    # The first member holds everything in one open batch (large, and no batch timeout in sight).
    holder_settings = fault_settings(kafka_settings, batch_size=1000, batch_timeout_ms=120_000, linger_ms=120_000)
    holder = StageThread(StreamRuntime(NormalizerStage(), holder_settings)).start()
    newcomer = None
    try:
        wait_for(lambda: holder.runtime.pending_count == len(events), 60, "the first member to hold every event uncommitted", [holder])
        assert len(holder.runtime.assigned) == kafka_settings.kafka.default_partitions
        # A second member joins: the first one's partitions are revoked (its batch dropped) and
        # some of them come back to it.
        joined = time.monotonic()
        newcomer = StageThread(StreamRuntime(NormalizerStage(), fault_settings(kafka_settings))).start()
        wait_for(lambda: newcomer.runtime.assigned and (holder.runtime.assigned_at or 0) > joined, 60,
                 "the rebalance", [holder, newcomer])
        kept = holder.runtime.assigned
        assert kept and kept.isdisjoint(newcomer.runtime.assigned)
        per_partition = Counter(r.partition for r in read_topic(kafka_settings, RAW))
        expected_back = sum(per_partition[tp.partition] for tp in kept)
        # The first member reads its partitions again from the last commit (nothing was committed).
        wait_for(lambda: holder.runtime.pending_count == expected_back, 30,
                 f"the first member to read its {expected_back} events again", [holder, newcomer])
        wait_for(lambda: newcomer.runtime.stats.processed >= len(events) - expected_back, 60,
                 "the second member to process its share", [holder, newcomer])
    finally:
        stats = [stage.stop() for stage in (holder, newcomer) if stage is not None]  # stop() commits the open batch

    assert sum(s.processed for s in stats) == len(events) and sum(s.dead_lettered for s in stats) == 0
    normalized = read_events(kafka_settings, NORMALIZED, NormalizedFeedback)
    assert sorted(e.event_id for e in normalized) == sorted(e["event_id"] for e in events)
    assert read_events(kafka_settings, DEADLETTER, DeadLetter) == []

