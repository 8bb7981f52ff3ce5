"""Warm start (issue 16): a fresh alerter on a store with enriched history judges from its first minutes."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import sqlalchemy as sa

from consumers.alerter.rules import TermMatcher
from consumers.alerter.stage import AlerterStage
from consumers.stage import process_batch
from consumers.store.feedback_store import FeedbackStore
from pipelines.bench.alert_streams import SpikeSpec, StreamSpec, generate
from tests.alerts.helpers import NOW, T0, messages
from topics.schemas import AlertKind, AlertStatus, Channel, IssueType
from topics.settings import AlertSettings

# 6 hours of history, then a moderate spike 10 minutes after the alerter starts: too weak for the
# cold-start priors (5/h technical + 90/h is judged against a 10/h prior and a share of the rest),
# clear against the real baseline the store holds.
SPEC = StreamSpec(T0, timedelta(hours=8), seed=12, spike=SpikeSpec(
    IssueType.logistics, timedelta(hours=6, minutes=10), timedelta(minutes=30), 90.0, channel=Channel.email))
START = T0 + timedelta(hours=6)


def _run(store: sa.Engine, matcher: TermMatcher, settings: AlertSettings) -> tuple[AlerterStage, list]:
    events = [e for e in generate(SPEC) if e.received_at >= START]
    stage = AlerterStage(settings, store, matcher, clock=lambda: NOW)
    alerts = []
    batch = messages(events)
    for i in range(0, len(batch), 20):
        alerts += [out.event for out in process_batch(stage, batch[i : i + 20]).outputs]
    return stage, alerts


def _with_history(store: sa.Engine) -> None:
    history = [e for e in generate(SPEC) if e.received_at < START]
    FeedbackStore(store, run_migrations=False).upsert_enriched((e, np.zeros(4, dtype=np.float32)) for e in history)


def test_fresh_alerter_counts_the_stored_history_first(store: sa.Engine, matcher: TermMatcher) -> None:
    _with_history(store)
    stage, alerts = _run(store, matcher, AlertSettings())
    spikes = [a for a in alerts if a.kind == AlertKind.spike]
    assert spikes and spikes[0].status == AlertStatus.open
    onset = T0 + SPEC.spike.onset
    assert spikes[0].last_seen - onset <= timedelta(minutes=10)
    assert len({a.alert_id for a in spikes}) == 1
    # History is recorded as processed, not as this run's work.
    assert stage.stats.processed == len([e for e in generate(SPEC) if e.received_at >= START])
    # The detector's stream began with the stored history.
    assert stage.engine.detector.stream_start <= stage.engine.detector.bucket_of(START - timedelta(hours=5))


def test_warm_start_equals_an_alerter_that_saw_the_history(store: sa.Engine, matcher: TermMatcher, tmp_path) -> None:
    from consumers.store import make_engine, migrate

    reference = make_engine(f"sqlite:///{tmp_path / 'reference.db'}")
    migrate(reference)
    stage = AlerterStage(AlertSettings(), reference, matcher, clock=lambda: NOW)
    everything = messages(generate(SPEC))
    expected = []
    for i in range(0, len(everything), 20):
        expected += [out.event for out in process_batch(stage, everything[i : i + 20]).outputs]
    _with_history(store)
    _, alerts = _run(store, matcher, AlertSettings())

    def spikes(items):
        return [(a.key, a.status, a.count, round(a.baseline or 0, 6), a.last_seen) for a in items
                if a.kind != AlertKind.message and a.last_seen >= START]

    assert spikes(alerts) == spikes(expected) and spikes(alerts)


def test_warm_start_can_be_switched_off(store: sa.Engine, matcher: TermMatcher) -> None:
    _with_history(store)
    stage, _ = _run(store, matcher, AlertSettings(warm_start_from_store=False))
    assert stage.engine.detector.stream_start == stage.engine.detector.bucket_of(min(
        e.received_at for e in generate(SPEC) if e.received_at >= START))


def test_a_restarted_alerter_does_not_seed_again(store: sa.Engine, matcher: TermMatcher) -> None:
    _with_history(store)
    first, _ = _run(store, matcher, AlertSettings())
    second, alerts = _run(store, matcher, AlertSettings())
    # Everything was processed by the first instance: nothing counted again, no alert again.
    assert second.stats.processed == 0 and alerts == [] or all(a.revision >= 0 for a in alerts)
    assert second.stats.processed == 0



def test_theme_labels_come_from_the_store(store: sa.Engine) -> None:
    from consumers.alerter.stage import ThemeLabelLookup

    with store.begin() as conn:
        if sa.inspect(conn).has_table("themes"):
            conn.execute(sa.text(
                "INSERT INTO themes (theme_id, status, centroid, size, label, keywords, created_at, updated_at) "
                "VALUES ('th-1', 'live', :c, 3, '充电器发烫', '[]', :t, :t)"), {"c": b"\0", "t": NOW})
    lookup = ThemeLabelLookup(store)
    assert lookup("th-1") == "充电器发烫" and lookup("th-unknown") is None
