"""A stage process killed mid-batch, or asked to stop mid-stream, loses and duplicates nothing it must not.

The normalizer runs as ``feedback-miner consume normalizer`` (its own OS process, a real broker, a
SQLite file store). SIGKILL leaves its batch uncommitted: the next life reads it again
(at-least-once: what it had produced before the kill is on the output topic twice). SIGTERM lets
it finish the batch, commit, leave the group and exit 0: the next life duplicates nothing.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import time
from pathlib import Path

import pytest

from tests.faults.processes import (
    Publisher,
    StageProcess,
    all_committed,
    committed_offsets,
    count_enricher,
    count_normalizer,
    malformed_raw,
    process_settings,
    wait_until,
)
from tests.faults.streams import normalized_events, raw_events
from topics.settings import Settings
from topics.specs import DEADLETTER, NORMALIZED

pytestmark = pytest.mark.broker

log = logging.getLogger(__name__)

KILLS = 3


def _mixed_input(n: int, bad: int, prefix: str) -> list[dict]:
    """``n`` real reviews with ``bad`` malformed events spread among them."""
    events = raw_events(n, prefix)
    for i, event in enumerate(malformed_raw(bad, prefix)):
        events.insert((i + 1) * n // (bad + 1), event)
    return events


def _mid_batch(stage: StageProcess) -> bool:
    """The current life has committed a batch and holds another one, uncommitted."""
    metrics = stage.metrics()
    return bool(metrics and metrics["processed"] > 0 and metrics["pending"] > 0)


def test_a_stage_killed_mid_batch_three_times_loses_nothing(kafka_settings: Settings, tmp_path: Path) -> None:
    settings = process_settings(kafka_settings, batch_size=100, batch_timeout_ms=1000)
    publisher = Publisher(settings)
    events = _mixed_input(2000, 12, "kill")
    publisher.publish(events)
    stage = StageProcess("normalizer", settings, tmp_path / "normalizer.log").start()
    rng = random.Random(18)
    started = time.monotonic()
    uncommitted_at_kill = []
    try:
        for _ in range(KILLS):
            wait_until(lambda: _mid_batch(stage), 90, "a batch in flight", [stage])
            time.sleep(rng.uniform(0, 0.08))  # sometimes after the batch's outputs were produced, before its commit
            uncommitted_at_kill.append(int((stage.metrics() or {}).get("pending", -1)))
            stage.kill()
            stage.start()
        wait_until(lambda: all_committed(settings, "normalizer", publisher), 120, "every event committed", [stage])
        assert stage.stop() == 0, stage.tail()
    finally:
        stage.stop()
        publisher.close()
    count = count_normalizer(settings, publisher)
    log.info("SIGKILL x%d (uncommitted messages at each kill: %s): %s; %.1f s, load %s",
             KILLS, uncommitted_at_kill, count, time.monotonic() - started, os.getloadavg())
    count.check()
    assert count.events_in == len(events) and count.dead_lettered == 12
    assert stage.starts == KILLS + 1


class _StoredRows:
    """Counts the enricher's rows through one open engine (polled every few ms)."""

    def __init__(self, settings: Settings):
        from consumers.store import make_engine

        self.engine = make_engine(settings.store.url)

    def __call__(self) -> int:
        import sqlalchemy as sa

        try:
            with self.engine.connect() as conn:
                return conn.execute(sa.text("SELECT COUNT(*) FROM enriched_feedback")).scalar()
        except sa.exc.OperationalError:  # the stage has not created its tables yet
            return 0


# The model is loaded by the stage process only (a first use builds its int8 graph there, within the waits).
@pytest.mark.model
def test_the_enricher_killed_between_its_store_write_and_its_commit_stores_each_event_once(
        kafka_settings: Settings, tmp_path: Path) -> None:
    """The real model in its own process, killed just after a batch's rows were upserted, before its
    offsets were committed: the batch is read again, and the upsert by event id adds no second row."""
    settings = process_settings(kafka_settings, batch_size=64, batch_timeout_ms=500)
    publisher = Publisher(settings, NORMALIZED)
    events: list = normalized_events(320, "enr")
    for i in range(4):  # not a normalized event: dead-lettered by the enricher
        events.insert((i + 1) * 64, {"event_id": f"enr-bad-{i}", "channel": "app", "text": 7})
    publisher.publish(events)
    stage = StageProcess("enricher", settings, tmp_path / "enricher.log").start()
    stored_rows = _StoredRows(settings)
    started = time.monotonic()
    kills = []
    try:
        # A kill a few ms late lands after the commit: try again (a later batch) until one lands in between.
        for _ in range(3):
            wait_until(lambda: _mid_batch(stage), 240, "a batch committed and the next one in flight", [stage])
            rows_before = stored_rows()
            wait_until(lambda: stored_rows() > rows_before, 60, "the next batch's rows in the store", [stage], interval_s=0.002)
            stage.kill()  # its outputs and commit are a few ms behind the store write
            rows_at_kill, committed_at_kill = stored_rows(), sum(committed_offsets(settings, "enricher", NORMALIZED).values())
            kills.append((rows_at_kill, committed_at_kill))
            stage.start()
            # More rows than committed messages: the kill landed between the store write and the commit.
            if rows_at_kill > committed_at_kill:
                break
        else:
            pytest.fail(f"no kill landed between a store write and its commit: (rows, committed) {kills}")
        wait_until(lambda: all_committed(settings, "enricher", publisher), 240, "every event committed", [stage])
        assert stage.stop() == 0, stage.tail()
    finally:
        stage.stop()
        publisher.close()
        stored_rows.engine.dispose()
    count = count_enricher(settings, publisher)
    log.info("enricher SIGKILL after a store write ((rows, messages committed) at each kill: %s): %s; %.1f s, load %s",
             kills, count, time.monotonic() - started, os.getloadavg())
    count.check()
    assert count.events_in == len(events) and count.dead_lettered == 4


def test_sigterm_mid_stream_finishes_the_batch_commits_and_exits_0(kafka_settings: Settings, tmp_path: Path) -> None:
    # Large batches with a long timeout: the SIGTERM surely lands while one is open.
    settings = process_settings(kafka_settings, batch_size=400, batch_timeout_ms=3000)
    publisher = Publisher(settings)
    events = _mixed_input(1200, 6, "term")
    publisher.publish(events[:700])
    stage = StageProcess("normalizer", settings, tmp_path / "normalizer.log").start()
    try:
        wait_until(lambda: _mid_batch(stage), 90, "a batch in flight", [stage])
        publisher.publish(events[700:])
        stage.send(signal.SIGTERM)
        assert stage.wait_exit(30) == 0, stage.tail()
        # The first life's console line: everything it processed is committed, nothing more.
        processed = int(stage.log().rsplit("normalizer: ", 1)[1].split(" processed")[0])
        assert 0 < processed < len(events)
        assert sum(committed_offsets(settings, "normalizer").values()) == processed
        stage.start()
        wait_until(lambda: all_committed(settings, "normalizer", publisher), 120, "every event committed", [stage])
        assert stage.stop() == 0, stage.tail()
    finally:
        stage.stop()
        publisher.close()
    count = count_normalizer(settings, publisher)
    log.info("SIGTERM: %s (first life processed %d)", count, processed)
    count.check()
    assert count.events_in == len(events) and count.dead_lettered == 6
    assert count.topic_duplicates == {NORMALIZED: 0, DEADLETTER: 0}
