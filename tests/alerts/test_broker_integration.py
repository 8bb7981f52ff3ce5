"""The alerter on the real broker: enriched events → alerter runtime → feedback.alerts (and the tail command)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from consumers.alerter.rules import TermMatcher, load_rules
from consumers.alerter.stage import AlerterStage
from consumers.kafka_io import make_producer, read_topic, send
from consumers.runtime import StreamRuntime
from consumers.store import make_engine, migrate
from tests.alerts.helpers import NOW, T0, enriched, minutes
from topics.schemas import Alert, AlertKind, AlertStatus, Channel, DeadLetter, IssueType, Priority
from topics.serde import decode, headers_dict
from topics.specs import ALERTS, DEADLETTER, ENRICHED

pytestmark = pytest.mark.broker


def test_enriched_to_alerts_on_the_broker(kafka_settings) -> None:
    events = [
        enriched("充电宝充电时起火了，床单烧了一块", event_id="e1", customer_id="c-1", score=-0.9, issue=IssueType.product_quality),
        enriched("箱子被压扁了，幸好没有人受伤", event_id="e2", customer_id="c-2", at=T0 + minutes(1), score=-0.5),
        enriched("太失望了，年费会员就这种服务", event_id="e3", customer_id="c-3", tier="vip", at=T0 + minutes(2),
                 score=-0.85, issue=IssueType.service_attitude, channel=Channel.email),
        enriched("充电宝充电时起火了!!床单烧了一块", event_id="e4", customer_id="c-4", at=T0 + minutes(3),
                 score=-0.9, issue=IssueType.product_quality, duplicate_of="e1", channel=Channel.social),
    ]
    producer = make_producer(kafka_settings)
    topic = kafka_settings.topic(ENRICHED)
    for event in events:
        send(producer, topic, event, event.key()).get(timeout=30)
    producer.send(topic, key=b"c-9", value=b"\xff not an event").get(timeout=30)
    producer.close()

    store = make_engine(kafka_settings.store.url)
    migrate(store)
    stage = AlerterStage(kafka_settings.alerts, store, TermMatcher(load_rules()), clock=lambda: NOW)
    stats = StreamRuntime(stage, kafka_settings).run(max_messages=5, idle_exit_s=20)
    assert (stats.processed, stats.dead_lettered) == (5, 1)

    records = read_topic(kafka_settings, ALERTS)
    alerts = [decode(Alert, r.value, list(r.headers)) for r in records]
    # The fire (P1) and the strongly negative VIP (P2) alert; the negated injury and the duplicate do not.
    assert sorted((a.priority, a.key, a.status) for a in alerts) == [
        (Priority.P1, "customer:c-1", AlertStatus.open),
        (Priority.P2, "customer:c-3", AlertStatus.open),
    ]
    fire = next(a for a in alerts if a.priority == Priority.P1)
    assert fire.kind == AlertKind.message and any("起火" in r for r in fire.reasons)
    assert fire.samples[0].event_id == "e1" and "起火" in fire.samples[0].quote
    record = next(r for r in records if decode(Alert, r.value).priority == Priority.P1)
    assert record.key == b"message:customer:c-1" and headers_dict(record.headers)["schema"] == "feedback.alerts"
    dead = [decode(DeadLetter, r.value) for r in read_topic(kafka_settings, DEADLETTER)]
    assert [(d.stage, d.reason.value) for d in dead] == [("alerter", "not_utf8")]
    # The duplicate was counted for volume although it raised nothing.
    assert sum(b.count for b in stage.engine.detector.counts.buckets["v|channel:social"].values()) == 1

    # The live tail, filtered, reads the same topic.
    from pipelines.cli import app

    env = {
        "FEEDBACK_MINER_KAFKA__BOOTSTRAP_SERVERS": kafka_settings.kafka.bootstrap_servers,
        "FEEDBACK_MINER_KAFKA__TOPIC_PREFIX": kafka_settings.kafka.topic_prefix,
    }
    runner = CliRunner()
    result = runner.invoke(app, ["alerts", "tail", "--from-beginning", "--timeout", "2", "--raw", "--priority", "P1"], env=env)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [(x["priority"], x["key"]) for x in lines] == [("P1", "customer:c-1")]
    result = runner.invoke(app, ["alerts", "tail", "--from-beginning", "--timeout", "2", "--raw", "--channel", "email"], env=env)
    assert [json.loads(line)["key"] for line in result.stdout.splitlines() if line.startswith("{")] == ["customer:c-3"]
    result = runner.invoke(app, ["alerts", "tail", "--from-beginning", "--max", "2", "--timeout", "2"], env=env)
    assert result.exit_code == 0 and "P1" in result.stdout and "人身安全: 起火" in result.stdout
    store.dispose()


def test_a_replayed_spike_through_the_broker(kafka_settings) -> None:
    """A replay published in time order (one key) → exactly one spike alert, updated, then resolved."""
    from datetime import timedelta

    from pipelines.bench.alert_streams import SpikeSpec, StreamSpec, generate

    spec = StreamSpec(T0, timedelta(hours=8), spike=SpikeSpec(IssueType.logistics, timedelta(hours=5), timedelta(minutes=40), 70.0), seed=21)
    events = generate(spec)
    producer = make_producer(kafka_settings, linger_ms=20)
    topic = kafka_settings.topic(ENRICHED)
    futures = [send(producer, topic, event, "replay-2026-11-02") for event in events]
    producer.flush()
    for future in futures:
        future.get(timeout=30)
    producer.close()

    store = make_engine(kafka_settings.store.url)
    migrate(store)
    stage = AlerterStage(kafka_settings.alerts, store, TermMatcher(load_rules()), clock=lambda: NOW)
    settings = kafka_settings.model_copy(update={"runtime": kafka_settings.runtime.model_copy(update={"batch_size": 64})})
    stats = StreamRuntime(stage, settings).run(max_messages=len(events), idle_exit_s=20)
    assert stats.processed == len(events) and stats.dead_lettered == 0
    alerts = [decode(Alert, r.value) for r in read_topic(kafka_settings, ALERTS)]
    spikes = [a for a in alerts if a.kind != AlertKind.message]
    assert len({a.alert_id for a in spikes}) == 1
    statuses = [a.status for a in spikes]
    assert statuses[0] == AlertStatus.open and statuses[-1] == AlertStatus.resolved and AlertStatus.update in statuses
    assert [a.revision for a in spikes] == list(range(len(spikes)))
    onset = T0 + timedelta(hours=5)
    assert onset <= spikes[0].last_seen <= onset + timedelta(minutes=15)
    # The incident may open on any of its signals (all in the app channel); the others fold into it.
    assert spikes[0].key in ("issue_type:logistics", "theme:t-spike", "channel:app")
    store.dispose()
