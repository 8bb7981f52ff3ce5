"""The alerter stage on a real store (SQLite and PostgreSQL): restarts, redelivery, several instances, bad input."""

from __future__ import annotations

import json
import zlib
from datetime import timedelta

import pytest
import sqlalchemy as sa

from consumers.alerter.rules import TermMatcher
from consumers.alerter.stage import AlerterStage
from consumers.stage import InMessage, process_batch
from consumers.store import make_engine, migrate
from tests.alerts.helpers import BATCH, NOW, T0, messages
from topics.schemas import Alert, AlertKind, DeadLetterReason
from topics.settings import AlertSettings



def _stage(store: sa.Engine, matcher: TermMatcher) -> AlerterStage:
    return AlerterStage(AlertSettings(), store, matcher, clock=lambda: NOW)


def _run(stage: AlerterStage, batch: list[InMessage]) -> list[Alert]:
    result = process_batch(stage, batch)
    assert result.dead_letters == []
    return [out.event for out in result.outputs]


def _signature(alerts: list[Alert]) -> list[tuple]:
    """Alerts with ids replaced by their order of appearance (ids are random per run)."""
    ids: dict[str, int] = {}
    return [(ids.setdefault(a.alert_id, len(ids)), a.revision, a.kind, a.key, a.status, a.count, a.total_count) for a in alerts]


def _batches(stream: list[InMessage]) -> list[list[InMessage]]:
    return [stream[i : i + BATCH] for i in range(0, len(stream), BATCH)]


def test_state_survives_a_restart(store: sa.Engine, matcher: TermMatcher, stream: list[InMessage], tmp_path) -> None:
    # Reference: one uninterrupted instance on its own SQLite file.
    reference_store = make_engine(f"sqlite:///{tmp_path / 'reference.db'}")
    migrate(reference_store)
    reference_stage = _stage(reference_store, matcher)
    reference = [a for batch in _batches(stream) for a in _run(reference_stage, batch)]
    assert any(a.kind == AlertKind.spike for a in reference)

    # Restart in the middle of the spike (an alert is open): a new stage instance on the same store.
    batches = _batches(stream)
    cut = next(i for i, b in enumerate(batches) if b[-1].offset >= len(stream) * 5 // 8 + 20)
    first = _stage(store, matcher)
    before = [a for batch in batches[:cut] for a in _run(first, batch)]
    assert any(a.kind == AlertKind.spike for a in before), "the restart must happen while a spike alert is open"
    second = _stage(store, matcher)
    after = [a for batch in batches[cut:] for a in _run(second, batch)]
    assert _signature(before + after) == _signature(reference)
    # The open alert kept its id across the restart.
    spike_ids = {a.alert_id for a in before + after if a.kind == AlertKind.spike}
    assert len(spike_ids) == 1
    reference_store.dispose()


def test_redelivered_batch_is_not_counted_twice_and_its_alerts_are_published_again(store, matcher, stream) -> None:
    stage = _stage(store, matcher)
    batches = _batches(stream)
    produced = [_run(stage, batch) for batch in batches]
    index = next(i for i, alerts in enumerate(produced) if any(a.kind == AlertKind.spike for a in alerts))
    with store.connect() as conn:
        counts_before = conn.execute(sa.text("SELECT series, bucket, count FROM alerter_buckets ORDER BY series, bucket")).all()
    # The runtime crashed after the state commit but before the Kafka commit: the batch comes again.
    again = _run(_stage(store, matcher), batches[index])
    assert [(a.alert_id, a.revision, a.status) for a in again] == [(a.alert_id, a.revision, a.status) for a in produced[index]]
    with store.connect() as conn:
        counts_after = conn.execute(sa.text("SELECT series, bucket, count FROM alerter_buckets ORDER BY series, bucket")).all()
    assert counts_after == counts_before


def test_two_instances_sharing_the_store_count_globally(store, matcher, stream, tmp_path) -> None:
    # The enriched topic is keyed by customer, so each instance sees only some partitions.
    by_partition = {0: [], 1: []}
    for message in stream:
        by_partition[zlib.crc32(message.key) % 2].append(message)
    repartitioned = []
    for partition, items in by_partition.items():
        repartitioned += [InMessage(m.topic, partition, n, m.key, m.value, m.headers) for n, m in enumerate(items)]
    # Interleave the two partitions' batches in event-time order, as two live consumers would.
    chunks = []
    for partition in (0, 1):
        items = [m for m in repartitioned if m.partition == partition]
        chunks += [items[i : i + 20] for i in range(0, len(items), 20)]
    order = sorted(chunks, key=lambda c: generate_time(c[-1]))
    a, b = _stage(store, matcher), _stage(store, matcher)
    shared = [alert for chunk in order for alert in _run(a if chunk[0].partition == 0 else b, chunk)]

    single_store = make_engine(f"sqlite:///{tmp_path / 'single.db'}")
    migrate(single_store)
    single_stage = _stage(single_store, matcher)
    single = [alert for chunk in order for alert in _run(single_stage, chunk)]
    assert _signature(shared) == _signature(single)
    assert any(x.kind == AlertKind.spike for x in shared)
    single_store.dispose()


def generate_time(message: InMessage) -> str:
    return json.loads(message.value)["received_at"]


def test_bad_input_is_dead_lettered_and_good_input_still_processed(store, matcher) -> None:
    from tests.alerts.helpers import enriched

    good = messages([enriched("热水器漏电，我被电伤住院了", event_id="g1", score=-0.9)], first_offset=2)
    bad = [
        InMessage("feedback.enriched", 0, 0, b"c", b"{not json", []),
        InMessage("feedback.enriched", 0, 1, b"c", b'{"event_id": "x"}', []),
    ]
    result = process_batch(_stage(store, matcher), bad + good)
    assert sorted(dl.reason for dl in result.dead_letters) == [DeadLetterReason.not_json, DeadLetterReason.schema_invalid]
    assert [(o.event.kind, o.event.priority.value) for o in result.outputs] == [(AlertKind.message, "P1")]
    assert result.outputs[0].topic == "feedback.alerts" and result.outputs[0].key == "message:customer:c-1"


def test_concurrent_instances_never_lose_counts(store, matcher, stream) -> None:
    # Two instances in two threads at the same time: the lock serialises their batches, so no
    # instance overwrites counts the other wrote (each writes absolute bucket values).
    import threading

    # Six hours of events: shorter than the pruning horizon, however far one thread runs ahead.
    stream = [m for m in stream if generate_time(m) < (T0 + timedelta(hours=6)).isoformat()]
    halves = {0: [], 1: []}
    for message in stream:
        halves[zlib.crc32(message.key) % 2].append(message)
    errors: list[BaseException] = []

    def run(partition: int) -> None:
        try:
            stage = _stage(store, matcher)
            items = [InMessage(m.topic, partition, n, m.key, m.value, m.headers) for n, m in enumerate(halves[partition])]
            for i in range(0, len(items), 10):
                _run(stage, items[i : i + 10])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(p,)) for p in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    with store.connect() as conn:
        per_channel = conn.execute(sa.text("SELECT SUM(count) FROM alerter_buckets WHERE series LIKE 'v|channel:%'")).scalar()
        processed = conn.execute(sa.text("SELECT COUNT(*) FROM alerter_processed")).scalar()
    assert per_channel == len(stream)
    assert processed == len(stream)


def test_the_registered_stage_is_built_from_settings(store_url, tmp_path) -> None:
    from consumers.alerter.rules import RulesError
    from consumers.alerter.webhooks import WebhookDispatcher
    from pipelines.stages import STAGES, build_stage
    from tests.alerts.helpers import enriched
    from topics.settings import Settings

    assert list(STAGES)[-1] == "alerter"
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "p1: {categories: {recall: {zh: 召回, terms: [召回]}}}\nnegation: {negators: [没有]}\n"
        "p2: {vip_tiers: [vip], vip_negative_score: -0.5}\np3: {negative_score: -0.2, unspecific_issue_types: [other]}\n",
        encoding="utf-8",
    )
    settings = Settings(store={"url": store_url}, alerts={"rules_path": str(rules), "webhooks": [{"url": "http://127.0.0.1:9/hook"}]})
    stage = build_stage("alerter", settings)
    assert isinstance(stage, AlerterStage) and isinstance(stage.sinks[0], WebhookDispatcher)
    result = process_batch(stage, messages([enriched("这批充电宝要召回吗", score=-0.3)]))
    assert [(o.event.priority.value, o.event.reasons[0]) for o in result.outputs] == [("P1", "召回: 召回")]
    stage.sinks[0].close(0.1)
    with pytest.raises(RulesError, match="not found"):
        build_stage("alerter", Settings(store={"url": store_url}, alerts={"rules_path": str(tmp_path / "nope.yaml")}))


def test_a_restarted_alerter_judges_a_young_theme_like_one_that_ran_through(store: sa.Engine, matcher: TermMatcher, tmp_path) -> None:
    # A theme born at 6 h outgrows its whole issue type: while it is young it is judged against its
    # parent (the issue type of its latest message), which must survive a restart (migration 203).
    from pipelines.bench.alert_streams import SpikeSpec, StreamSpec, generate
    from topics.schemas import IssueType

    spec = StreamSpec(T0 + timedelta(hours=1), timedelta(hours=6, minutes=30), seed=3, spike=SpikeSpec(
        IssueType.technical, timedelta(hours=6), timedelta(minutes=20), 240.0, theme_id="t-new"))
    events = generate(spec)
    stream = messages(events)
    reference_store = make_engine(f"sqlite:///{tmp_path / 'reference.db'}")
    migrate(reference_store)
    reference_stage = _stage(reference_store, matcher)
    reference = [a for batch in _batches(stream) for a in _run(reference_stage, batch)]
    spikes = [a for a in reference if a.kind == AlertKind.spike]
    assert spikes and spikes[0].key == "theme:t-new", [(a.key, a.status.value) for a in spikes]

    # Restart while the young theme's alert is open, on an event of another series: the new instance
    # judges the open theme (to update or resolve it) from the store alone.
    opened_at = spikes[0].last_seen
    cut = next(i for i, event in enumerate(events) if event.received_at > opened_at and event.theme_id != "t-new")
    first = _stage(store, matcher)
    before = [a for i in range(0, cut, BATCH) for a in _run(first, stream[i : min(i + BATCH, cut)])]
    assert any(a.key == "theme:t-new" for a in before)
    with store.connect() as conn:
        parents = dict(conn.execute(sa.text("SELECT series, parent FROM alerter_series_parents")).all())
    assert parents["theme:t-new"] == "issue_type:technical"
    second = _stage(store, matcher)
    with second.state.batch(second.engine, []):  # loads the state, counts nothing
        pass
    # The open theme's verdict (the one that updates or resolves it) is the same from the store alone.
    detector = first.engine.detector
    assert second.engine.detector.volume("theme:t-new", detector.watermark, [15]) == detector.volume("theme:t-new", detector.watermark, [15])
    after = [a for i in range(cut, len(stream), BATCH) for a in _run(second, stream[i : i + BATCH])]
    assert _signature(before + after) == _signature(reference)
    reference_store.dispose()
