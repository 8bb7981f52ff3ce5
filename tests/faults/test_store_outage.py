"""The store goes down under a running stage (issue 22): the stage pauses, retries and resumes.

A PostgreSQL outage says nothing about the messages: the stage keeps its
uncommitted batch, stops fetching, stays in its group, retries with backoff and
goes on when the store is back. Nothing is dead-lettered, nothing is lost, and
nothing is counted twice. The database is a private server of the test
(tests/faults/pgserver.py), never the machine's shared one.
"""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY

from consumers.alerter.stage import AlerterStage
from consumers.runtime import StreamRuntime
from consumers.stage import InMessage, process_batch
from consumers.store import make_engine, migrate
from pipelines.enrichment import build_enricher
from tests.faults.pgserver import PrivatePostgres
from tests.faults.streams import (
    NOW,
    StageThread,
    alert_facts,
    alert_stream,
    fault_settings,
    first_publications,
    normalized_events,
    publish,
    read_events,
    wait_for,
)
from topics.schemas import Alert, AlertKind, DeadLetter, EnrichedFeedback
from topics.serde import encode, make_headers
from topics.settings import AlertSettings, Settings
from topics.specs import ALERTS, DEADLETTER, ENRICHED, NORMALIZED

pytestmark = pytest.mark.broker

log = logging.getLogger(__name__)

OUTAGE_S = 9.0


def _metric(name: str, stage: str) -> float:
    return REGISTRY.get_sample_value(name, {"stage": stage}) or 0.0


def _mean_batch_s(stage: str) -> float:
    """Mean time of this stage's batches so far, in this process (0 before the first)."""
    total = REGISTRY.get_sample_value("feedback_miner_batch_seconds_sum", {"stage": stage}) or 0.0
    count = REGISTRY.get_sample_value("feedback_miner_batch_seconds_count", {"stage": stage}) or 0.0
    return total / count if count else 0.0


def _outage(server: PrivatePostgres, stage: StageThread, total: int, publish_rest, crash: bool = False) -> dict:
    """With a third of ``total`` processed: stop the store (a fast shutdown, or a crash: SIGKILL),
    publish the rest (so batches meet the outage even when the first part is done), keep the store
    down ``OUTAGE_S`` (longer when batches are slow), start it again."""
    runtime = stage.runtime
    wait_for(lambda: runtime.stats.processed >= total // 3, 120, "a third of the events processed", [stage])
    if crash:
        server.kill()
    else:
        server.stop()
    stopped = time.monotonic()
    before = {"processed": runtime.stats.processed, "faults": runtime.stats.transient_faults}
    publish_rest()
    wait_for(lambda: runtime.paused, 60, "the stage to pause on the store outage", [stage])
    assert _metric("feedback_miner_stage_paused", runtime.stage.name) == 1
    # Each retry runs the whole batch again (the enricher's model first): on loaded cores a batch can
    # take seconds, so the outage lasts long enough for about three of them, and at least OUTAGE_S.
    outage_s = max(OUTAGE_S, 3.5 * _mean_batch_s(runtime.stage.name))
    while time.monotonic() - stopped < outage_s:
        stage.check()  # it rides the outage out: never dies, never dead-letters
        assert runtime.stats.dead_lettered == 0
        time.sleep(0.1)
    during = {"processed": runtime.stats.processed - before["processed"], "outage_s": round(outage_s, 1),
              "faults": runtime.stats.transient_faults - before["faults"], "pending": runtime.pending_count}
    server.start()
    log.info("store outage of %.1f s: %s", time.monotonic() - stopped, during)
    return during


@pytest.mark.model
def test_enricher_rides_out_a_store_outage(kafka_settings: Settings, private_pg: PrivatePostgres, feedback_model) -> None:
    n = 720
    settings = fault_settings(kafka_settings, private_pg.url)
    events = normalized_events(n, f"n{uuid.uuid4().hex[:6]}")
    publish(settings, NORMALIZED, events[: n // 2])
    faults_before = _metric("feedback_miner_transient_faults_total", "enricher")

    enricher = StageThread(StreamRuntime(build_enricher(settings, model=feedback_model), settings)).start()
    started = time.monotonic()
    try:
        during = _outage(private_pg, enricher, n, lambda: publish(settings, NORMALIZED, events[n // 2 :]))
        wait_for(lambda: enricher.runtime.stats.processed >= n and not enricher.runtime.paused,
                 120, "every event processed after the store came back", [enricher])
        log.info("enricher: %d events in %.1f s with the outage", n, time.monotonic() - started)
    finally:
        stats = enricher.stop()

    # Paused (not crashed, not dead-lettered), retried with backoff while the store was down, resumed.
    assert stats.pauses >= 1 and stats.dead_lettered == 0
    assert during["faults"] >= 3, f"the batch should be retried several times during a {during['outage_s']} s outage: {during}"
    assert during["pending"] > 0  # the batch was kept, not dropped
    assert _metric("feedback_miner_transient_faults_total", "enricher") - faults_before >= during["faults"]
    assert _metric("feedback_miner_stage_paused", "enricher") == 0
    assert read_events(settings, DEADLETTER, DeadLetter) == []

    # Exactly one enriched row per event in the store: none missing, none twice.
    engine = sa.create_engine(private_pg.url)
    with engine.connect() as conn:
        rows, distinct = conn.execute(sa.text("SELECT COUNT(*), COUNT(DISTINCT event_id) FROM enriched_feedback")).one()
        stored = set(conn.execute(sa.text("SELECT event_id FROM enriched_feedback")).scalars())
    engine.dispose()
    assert (rows, distinct) == (n, n)
    assert stored == {e.event_id for e in events}

    # Every event on the enriched topic (at-least-once: a batch retried after a failed produce may
    # appear twice there; the store and the alerter are idempotent by event id).
    enriched = read_events(settings, ENRICHED, EnrichedFeedback)
    assert {e.event_id for e in enriched} == {e.event_id for e in events}
    assert len(enriched) >= n


def _reference_alerts(events: list[EnrichedFeedback], tmp_path: Path, batch: int = 50) -> list[Alert]:
    """The same events in-process, on a fresh SQLite store, without any fault."""
    engine = make_engine(f"sqlite:///{tmp_path / 'reference.db'}")
    migrate(engine)
    stage = AlerterStage(AlertSettings(), engine, clock=lambda: NOW)
    alerts: list[Alert] = []
    for i in range(0, len(events), batch):
        chunk = events[i : i + batch]
        result = process_batch(stage, [InMessage(ENRICHED, 0, i + j, e.key().encode(), encode(e), make_headers(e)) for j, e in enumerate(chunk)])
        assert result.dead_letters == []
        stage.on_committed(result)
        alerts += [o.event for o in result.outputs]
    engine.dispose()
    return alerts


@pytest.mark.parametrize("crash", [False, True], ids=["shutdown", "crash"])
def test_alerter_rides_out_a_store_outage(kafka_settings: Settings, private_pg: PrivatePostgres, tmp_path: Path, crash: bool) -> None:
    settings = fault_settings(kafka_settings, private_pg.url)
    events = alert_stream(prefix=f"a{uuid.uuid4().hex[:6]}")
    n = len(events)
    # One partition: the alerter then meets the events in event-time order in every run whatever
    # its batch boundaries (which the outage changes), and its alerts are deterministic: they must
    # equal a reference run's. (Across partitions, the interleaving moves the event-time watermark
    # differently from run to run, and message alerts expire on that watermark.)
    publish(settings, ENRICHED, events[: n // 2], partition=0)
    engine = make_engine(private_pg.url)
    migrate(engine)
    stage = AlerterStage(settings.alerts, engine, clock=lambda: NOW)

    alerter = StageThread(StreamRuntime(stage, settings)).start()
    try:
        during = _outage(private_pg, alerter, n, lambda: publish(settings, ENRICHED, events[n // 2 :], partition=0), crash)
        wait_for(lambda: alerter.runtime.stats.processed >= n and not alerter.runtime.paused,
                 60, "every event processed after the store came back", [alerter])
    finally:
        stats = alerter.stop()

    assert stats.pauses >= 1 and stats.dead_lettered == 0
    assert during["faults"] >= 3 and during["pending"] > 0
    assert read_events(settings, DEADLETTER, DeadLetter) == []

    # Every event counted exactly once.
    with engine.connect() as conn:
        processed = list(conn.execute(sa.text("SELECT event_id FROM alerter_processed")).scalars())
        logged = {tuple(r) for r in conn.execute(sa.text("SELECT alert_id, revision FROM alert_events")).all()}
        unmarked = conn.execute(sa.text("SELECT COUNT(*) FROM alert_events WHERE published_at IS NULL")).scalar()
    engine.dispose()
    assert len(processed) == n and set(processed) == {e.event_id for e in events}
    assert stage.stats.processed == n

    # The alerts equal those of a run without outage: same alerts (kind, key), statuses, counts and
    # revisions. Delivery is at-least-once: an alert event whose batch was retried after its publication
    # could not be acknowledged appears again with its id and revision, so each (id, revision) counts once.
    published = read_events(settings, ALERTS, Alert)
    reference = _reference_alerts(events, tmp_path)
    assert {a.kind for a in reference} >= {AlertKind.message, AlertKind.spike}  # the stream exercises both
    assert alert_facts(first_publications(published)) == alert_facts(reference)
    # The alert log in the store has exactly the published alert events. A publication whose mark could
    # not be written because the store went down right after it stays unmarked (it is published again
    # only if its event is redelivered); the log says so.
    assert logged == {(a.alert_id, a.revision) for a in published}
    log.info("alerter: %d alert events, %d published more than once, %d left unmarked", len(logged),
             len(published) - len(first_publications(published)), unmarked)
