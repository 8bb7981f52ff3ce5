"""The alerter is idempotent by event id, never by Kafka offset (SQLite and PostgreSQL).

A message is delivered again in several ways: the same batch after a crash
(state committed, Kafka offsets not), a copy the enricher re-produced at a new
offset, a broker restart that starts offsets from 0 again while the store is
kept, or a second run of the same file. None of them may count an event twice,
skip a new event, or publish again an alert whose publication was acknowledged.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import sqlalchemy as sa

from consumers.alerter.rules import TermMatcher
from consumers.alerter.stage import AlerterStage
from consumers.stage import InMessage, process_batch
from consumers.store import make_engine, migrate
from tests.alerts.helpers import BATCH, NOW, T0, enriched, messages, minutes
from topics.schemas import Alert, AlertKind, AlertStatus
from topics.settings import AlertSettings



def _stage(store: sa.Engine, matcher: TermMatcher, clock=lambda: NOW) -> AlerterStage:
    return AlerterStage(AlertSettings(), store, matcher, clock=clock)


def _deliver(stage: AlerterStage, batch: list[InMessage], acknowledged: bool = True) -> list[Alert]:
    """One batch through the stage; ``acknowledged``: the runtime got every output acknowledged
    and committed, and called the stage's ``on_committed`` (otherwise it crashed before that)."""
    result = process_batch(stage, batch)
    assert result.dead_letters == []
    if acknowledged:
        stage.on_committed(result)
    return [out.event for out in result.outputs]


def _batches(stream: list[InMessage]) -> list[list[InMessage]]:
    return [stream[i : i + BATCH] for i in range(0, len(stream), BATCH)]


def _at_offsets(items: list[InMessage], first_offset: int) -> list[InMessage]:
    """The same events at other offsets (re-produced, or a new broker counting from 0)."""
    return [replace(m, offset=first_offset + i) for i, m in enumerate(items)]


def _signature(alerts: list[Alert]) -> list[tuple]:
    ids: dict[str, int] = {}
    return [(ids.setdefault(a.alert_id, len(ids)), a.revision, a.kind, a.key, a.status, a.count, a.total_count) for a in alerts]


def _state(store: sa.Engine) -> tuple[list, list]:
    with store.connect() as conn:
        buckets = conn.execute(sa.text("SELECT series, bucket, count, score_sum FROM alerter_buckets ORDER BY series, bucket")).all()
        states = conn.execute(sa.text("SELECT kind, key, alert_id, is_open, state FROM alerter_alert_state ORDER BY kind, key")).all()
    return [tuple(r) for r in buckets], [tuple(r) for r in states]


def _keys(alerts: list[Alert]) -> list[tuple[str, int]]:
    return [(a.alert_id, a.revision) for a in alerts]


def test_re_produced_events_at_new_offsets_are_not_counted_again(store, matcher, stream) -> None:
    stage = _stage(store, matcher)
    batches = _batches(stream)
    produced = [_deliver(stage, batch) for batch in batches]
    index = next(i for i, alerts in enumerate(produced) if any(a.kind == AlertKind.spike for a in alerts))
    before = _state(store)
    # The enricher crashed after producing this batch and produced it again: same event ids, new offsets.
    copies = _at_offsets(batches[index], len(stream))
    assert _deliver(stage, copies) == []  # acknowledged alerts are not published again
    assert _deliver(_stage(store, matcher), _at_offsets(batches[index], 2 * len(stream))) == []  # nor by a restarted instance
    assert _state(store) == before
    with store.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM alerter_processed")).scalar() == len(stream)
        assert conn.execute(sa.text("SELECT COUNT(*) FROM alert_events WHERE published_at IS NULL")).scalar() == 0


def test_a_message_alert_counts_each_event_once(store, matcher) -> None:
    # Two messages of one customer, the first re-produced at a new offset, then a third message:
    # the alert counts three messages (it used to count the copy too).
    first, second, third = (
        enriched("充电宝起火了", event_id="m1", customer_id="c-9", score=-0.9),
        enriched("还冒烟了，吓死了", event_id="m2", customer_id="c-9", at=T0 + minutes(2), score=-0.9),
        enriched("到现在没人联系我，我要起诉", event_id="m3", customer_id="c-9", at=T0 + minutes(7), score=-0.9),
    )
    stage = _stage(store, matcher)
    opened = _deliver(stage, messages([first, second]))
    assert [(a.status, a.count) for a in opened] == [(AlertStatus.open, 1)]
    assert _deliver(stage, messages([first], first_offset=2)) == []
    update = _deliver(stage, messages([third], first_offset=3))
    assert [(a.status, a.alert_id, a.count, a.total_count) for a in update] == [(AlertStatus.update, opened[0].alert_id, 3, 3)]
    assert stage.stats.processed == 3 and stage.stats.repeated == 1


def test_an_unacknowledged_alert_is_published_again_and_an_acknowledged_one_is_not(store, matcher, stream) -> None:
    stage = _stage(store, matcher)
    batches = _batches(stream)
    # The runtime crashes before acknowledging the outputs of the second batch that caused alerts.
    produced, unacked = [], None
    for i, batch in enumerate(batches):
        result = process_batch(stage, batch)
        alerts = [out.event for out in result.outputs]
        if unacked is None and alerts and any(produced):
            unacked = i
        else:
            stage.on_committed(result)
        produced.append(alerts)
    assert unacked is not None, "some batch after the first alerting one must produce alerts"
    acked = next(i for i, alerts in enumerate(produced) if alerts and i != unacked)
    # After a restart the crashed batch comes again, now at offsets from 0 (a new embedded broker).
    restarted = _stage(store, matcher)
    again = _deliver(restarted, _at_offsets(batches[unacked], 0), acknowledged=False)
    assert _keys(again) == _keys(produced[unacked])
    assert [a.model_dump() for a in again] == [a.model_dump() for a in produced[unacked]]  # the very same events
    assert _deliver(restarted, _at_offsets(batches[acked], 100)) == []
    assert restarted.stats.republished == len(again) and restarted.stats.repeated_earlier == len(batches[unacked]) + len(batches[acked])
    # Still unacknowledged: published again on the next delivery, then acknowledged, then never again.
    assert _keys(_deliver(restarted, batches[unacked])) == _keys(produced[unacked])
    assert _deliver(restarted, batches[unacked]) == []
    with store.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM alert_events WHERE published_at IS NULL")).scalar() == 0


def test_offsets_restarting_from_zero_count_new_events_and_skip_old_ones(store, matcher, stream, tmp_path) -> None:
    # Reference: one uninterrupted instance.
    reference_store = make_engine(f"sqlite:///{tmp_path / 'reference.db'}")
    migrate(reference_store)
    reference_stage = _stage(reference_store, matcher)
    reference = [a for batch in _batches(stream) for a in _deliver(reference_stage, batch)]

    # The first broker: everything up to the middle of the spike, acknowledged.
    cut = next(i for i, m in enumerate(stream) if m.offset >= len(stream) * 5 // 8 + 20)
    cut -= cut % BATCH
    first = _stage(store, matcher)
    before = [a for batch in _batches(stream[:cut]) for a in _deliver(first, batch)]
    assert any(a.kind == AlertKind.spike and a.status == AlertStatus.open for a in before), "the spike alert must be open at the cut"
    # A new broker (the embedded one keeps nothing): offsets start at 0 again. The producer re-sends the
    # last 80 events it was unsure of, then the rest of the stream.
    overlap = 80
    resent = _at_offsets(stream[cut - overlap :], 0)
    listened: list[Alert] = []
    second = _stage(store, matcher)
    second.published_listeners.append(listened.extend)
    after = [a for batch in _batches(resent) for a in _deliver(second, batch)]

    assert _signature(before + after) == _signature(reference)  # no event skipped, none counted twice
    assert not set(_keys(after)) & set(_keys(before))  # no old alert published again
    assert _keys(listened) == _keys(after)
    assert second.stats.repeated_earlier == overlap and second.stats.processed == len(stream) - cut
    assert _state(store)[0] == _state(reference_store)[0]
    reference_store.dispose()


def test_the_same_event_twice_in_one_batch_counts_once(store, matcher) -> None:
    event = enriched("充电宝起火了", event_id="twice", customer_id="c-7", score=-0.9)
    stage = _stage(store, matcher)
    crashed = _deliver(stage, messages([event, event]), acknowledged=False)
    assert [(a.kind, a.count) for a in crashed] == [(AlertKind.message, 1)]
    # Delivered twice again in one batch: its unacknowledged alert goes out once.
    again = _deliver(_stage(store, matcher), messages([event, event, event], first_offset=5))
    assert _keys(again) == _keys(crashed)
    with store.connect() as conn:
        assert conn.execute(sa.text("SELECT SUM(count) FROM alerter_buckets WHERE series LIKE 'v|channel:%'")).scalar() == 1


def test_processed_event_ids_are_pruned_only_when_old_in_event_time_and_in_processing_time(store, matcher) -> None:
    now = {"t": T0 + timedelta(hours=1)}
    stage = _stage(store, matcher, clock=lambda: now["t"])
    _deliver(stage, messages([enriched("快递慢", event_id="old", at=T0)]))
    # Nine days later in both clocks: "old" is far behind the watermark and was processed long ago.
    now["t"] = T0 + timedelta(days=9, hours=1)
    _deliver(stage, messages([enriched("快递慢", event_id="new", at=T0 + timedelta(days=9))], first_offset=1))
    # A backfilled event, old in event time but processed now, is kept: its redelivery must still be recognised.
    _deliver(stage, messages([enriched("快递慢", event_id="backfill", at=T0 + timedelta(minutes=30))], first_offset=2))
    with store.connect() as conn:
        kept = set(conn.execute(sa.text("SELECT event_id FROM alerter_processed")).scalars())
    assert kept == {"new", "backfill"}
    # The sample file run again days later in processing time: its events are near the watermark, kept.
    now["t"] = T0 + timedelta(days=30)
    _deliver(stage, messages([enriched("快递慢", event_id="late-run", at=T0 + timedelta(days=9, minutes=1))], first_offset=3))
    with store.connect() as conn:
        kept = set(conn.execute(sa.text("SELECT event_id FROM alerter_processed")).scalars())
    assert kept == {"new", "late-run"}


def test_migration_202_takes_earlier_alert_events_as_published(store_url, monkeypatch) -> None:
    import consumers.store.db as db

    engine = make_engine(store_url)
    every = db.discover_migrations()
    monkeypatch.setattr(db, "discover_migrations", lambda: [m for m in every if m.version < 202])
    migrate(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO alerter_offsets (topic, partition, next_offset) VALUES ('feedback.enriched', 0, 71)"))
        conn.execute(
            sa.text(
                "INSERT INTO alert_events (alert_id, revision, kind, key, priority, status, title, last_seen, emitted_at,"
                " source_topic, source_partition, source_offset, event)"
                " VALUES ('a1', 0, 'message', 'customer:c', 'P1', 'open', 't', :at, :at, 'feedback.enriched', 0, 3, '{}')"
            ),
            {"at": datetime(2026, 11, 2, 1, 0)},
        )
    monkeypatch.undo()
    assert migrate(engine) == [v for v in (m.version for m in db.discover_migrations()) if v >= 202]
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT source_event_id, published_at FROM alert_events WHERE alert_id = 'a1'")).one()
        tables = set(sa.inspect(conn).get_table_names())
    assert row.source_event_id is None and row.published_at is not None
    assert "alerter_processed" in tables and "alerter_offsets" not in tables
    engine.dispose()


def test_on_committed_failure_is_logged_not_raised(store, matcher, caplog) -> None:
    stage = _stage(store, matcher)
    result = process_batch(stage, messages([enriched("充电宝起火了", event_id="m1", score=-0.9)]))
    stage.state.engine = sa.create_engine("sqlite:////nonexistent-feedback-miner-dir/store.db")
    stage.on_committed(result)  # offsets are committed already: a failure here must not stop the runtime
    assert "could not mark 1 alert events published" in caplog.text
    stage.state.engine.dispose()
    stage.state.engine = store
    # Unmarked, so a redelivery publishes it again (at least once).
    assert _keys(_deliver(_stage(store, matcher), messages([enriched("充电宝起火了", event_id="m1", score=-0.9)], first_offset=9))) == _keys(
        [out.event for out in result.outputs])
