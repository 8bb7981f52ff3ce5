"""A broker restart under running stages (issue 22): they recover by themselves.

The embedded broker keeps everything in memory: a restart loses the topics,
the committed offsets, the consumer groups and the idempotent producers' state,
while the store (dedup index, alerter state) persists. The same runtime objects
keep running through it: the next produce fails (the producer is recreated),
topics come back, offsets restart from 0, and the alerter's idempotence by event
id keeps a replay of already-processed events from publishing any alert again.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from consumers.alerter.stage import AlerterStage
from consumers.runtime import StreamRuntime
from consumers.stage import InMessage, process_batch
from consumers.store import make_engine, migrate
from pipelines.stages import build_stage
from tests.faults.streams import (
    NOW,
    StageThread,
    alert_facts,
    alert_stream,
    fault_settings,
    first_publications,
    publish,
    publish_raw,
    raw_events,
    read_events,
    wait_for,
)
from topics.admin import ensure_topics
from topics.embedded import EmbeddedBroker
from topics.schemas import Alert, DeadLetter, EnrichedFeedback, NormalizedFeedback
from topics.serde import encode, make_headers
from topics.settings import AlertSettings, Settings
from topics.specs import ALERTS, DEADLETTER, ENRICHED, NORMALIZED, RAW

pytestmark = pytest.mark.broker

log = logging.getLogger(__name__)


def _reference_alerts(batches: list[list[EnrichedFeedback]], tmp_path: Path) -> list[list[Alert]]:
    """The alerts of each batch, run in-process on a fresh SQLite store (no broker, no fault)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'reference.db'}")
    migrate(engine)
    stage = AlerterStage(AlertSettings(), engine, clock=lambda: NOW)
    out, offset = [], 0
    for events in batches:
        alerts = []
        for i in range(0, len(events), 50):
            chunk = events[i : i + 50]
            messages = [InMessage(ENRICHED, 0, offset + j, e.key().encode(), encode(e), make_headers(e)) for j, e in enumerate(chunk)]
            offset += len(chunk)
            result = process_batch(stage, messages)
            assert result.dead_letters == []
            stage.on_committed(result)
            alerts += [o.event for o in result.outputs]
        out.append(alerts)
    engine.dispose()
    return out


def test_normalizer_and_alerter_ride_out_a_broker_restart(own_broker: EmbeddedBroker, tmp_path: Path) -> None:
    base = Settings(
        kafka={"bootstrap_servers": own_broker.bootstrap_servers, "topic_prefix": "r.", "group_prefix": "r"},
        store={"url": f"sqlite:///{tmp_path / 'store.db'}"},
        data_dir=tmp_path,
    )
    settings = fault_settings(base)
    ensure_topics(settings)

    stream = alert_stream()
    half = len(stream) // 2
    enriched_1, enriched_2 = stream[:half], stream[half:]
    raw_1, raw_2 = raw_events(60, "r1"), raw_events(60, "r2", start=60)

    normalizer = StageThread(StreamRuntime(build_stage("normalizer", settings), settings))
    engine = make_engine(settings.store.url)
    migrate(engine)
    alerter_stage = AlerterStage(settings.alerts, engine, clock=lambda: NOW)
    alerter = StageThread(StreamRuntime(alerter_stage, settings))
    stages = [normalizer, alerter]
    for stage in stages:
        stage.start()
    try:
        # Batch 1, processed and committed before the restart. One partition keeps the alerter's input
        # in event-time order, so its alerts can be compared with a reference run (see the store outage test).
        publish_raw(settings, RAW, raw_1)
        publish(settings, ENRICHED, enriched_1, partition=0)
        wait_for(lambda: normalizer.runtime.stats.processed >= len(raw_1) and alerter.runtime.stats.processed >= len(enriched_1),
                 60, "batch 1 processed", stages)
        alerts_before = read_events(settings, ALERTS, Alert)
        assert alerts_before, "batch 1 must raise alerts"
        assert read_events(settings, DEADLETTER, DeadLetter) == []

        # The broker restarts on the same port with nothing: no topics, offsets, groups or producer ids.
        restarted_at = time.monotonic()
        own_broker.stop()
        own_broker.start()

        # Batch 2 (new events) and batch 1 again (same event ids), as a replay after the restart would send.
        publish_raw(settings, RAW, raw_2 + raw_1)
        publish(settings, ENRICHED, enriched_2 + enriched_1, partition=0)
        wait_for(
            lambda: normalizer.runtime.stats.processed >= 2 * len(raw_1) + len(raw_2)
            and alerter.runtime.stats.processed >= 2 * len(enriched_1) + len(enriched_2),
            90, "batch 2 and the replay processed after the restart", stages,
        )
        log.info("stages caught up %.1f s after the restart (pauses: normalizer %d, alerter %d)",
                 time.monotonic() - restarted_at, normalizer.runtime.stats.pauses, alerter.runtime.stats.pauses)
        for stage in stages:
            stage.check()  # the very same runtime objects, still running
    finally:
        stats = [stage.stop() for stage in stages]

    assert [s.dead_lettered for s in stats] == [0, 0]
    assert read_events(settings, DEADLETTER, DeadLetter) == []

    # The normalizer forwarded batch 2 and the replayed batch 1 on the new broker.
    normalized = {e.event_id for e in read_events(settings, NORMALIZED, NormalizedFeedback)}
    assert {e["event_id"] for e in raw_2 + raw_1} <= normalized

    # No alert event published before the restart is published again; batch 2's alerts are those
    # of a run without restart, and the replayed batch 1 published nothing.
    alerts_after = read_events(settings, ALERTS, Alert)
    published_before = {(a.alert_id, a.revision) for a in alerts_before}
    again = [(a.alert_id, a.revision, a.key) for a in alerts_after if (a.alert_id, a.revision) in published_before]
    assert again == [], f"alerts published again after the restart: {again}"
    reference_1, reference_2 = _reference_alerts([enriched_1, enriched_2], tmp_path)
    assert alert_facts(first_publications(alerts_before)) == alert_facts(reference_1)
    assert alert_facts(first_publications(alerts_after)) == alert_facts(reference_2)

    with engine.connect() as conn:
        processed = conn.execute(sa.text("SELECT COUNT(*) FROM alerter_processed")).scalar()
        unpublished = conn.execute(sa.text("SELECT COUNT(*) FROM alert_events WHERE published_at IS NULL")).scalar()
    assert processed == len(stream) and unpublished == 0
    # Every replayed event was recognised. (A batch whose produce failed on the restarted broker had
    # its state committed already: its retry counts as repeated and republishes the alerts that were
    # never acknowledged, with their original id and revision; those were never seen before the restart.)
    assert alerter_stage.stats.repeated >= len(enriched_1)
    engine.dispose()
