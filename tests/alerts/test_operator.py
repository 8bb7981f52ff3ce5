"""Acknowledge and resolve (issue 16): recorded in the store, seen by running instances, published as alert events."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from consumers.alerter.engine import AlertEngine
from consumers.alerter.rules import TermMatcher
from consumers.alerter.stage import AlerterStage
from consumers.alerter.state import AlertStateStore, alert_events, alert_states
from consumers.stage import process_batch
from tests.alerts.helpers import NOW, T0, enriched, messages, minutes
from topics.schemas import AlertStatus
from topics.settings import AlertSettings


def _engine(matcher: TermMatcher) -> AlertEngine:
    return AlertEngine.build(matcher, AlertSettings(), lambda: NOW)


def test_ack_then_resolve_through_the_store(store: sa.Engine, matcher: TermMatcher) -> None:
    stage = AlerterStage(AlertSettings(), store, matcher, clock=lambda: NOW)
    out = process_batch(stage, messages([enriched("充电宝起火了", event_id="a1", customer_id="c-7", score=-0.9)]))
    opened = out.outputs[0].event
    assert [s.alert_id for s in alert_states(store)] == [opened.alert_id]

    # An operator acknowledges it from another process (its own engine and state store).
    ops = AlertStateStore(store, clock=lambda: NOW)
    acked = ops.operator_action(_engine(matcher), opened.alert_id, "ack", "alice", "查看中")
    assert acked.status == AlertStatus.update and acked.revision == 1
    assert acked.reasons[0].startswith("已确认: alice") and "查看中" in acked.reasons[0]
    assert (acked.acknowledged_by, acked.acknowledged_at, acked.ack_note) == ("alice", NOW, "查看中")
    listed = alert_states(store)[0]
    assert listed.acknowledged_by == "alice" and listed.ack_note == "查看中"

    # The running stage loads the acknowledgement: its next update carries it, revisions continue.
    later = process_batch(stage, messages([enriched("还在冒烟，我要起诉", event_id="a2", customer_id="c-7", score=-0.9,
                                                    at=T0 + minutes(6))], first_offset=1))
    update = later.outputs[0].event
    assert update.alert_id == opened.alert_id and update.revision == 2 and update.reasons[0].startswith("已确认: alice")
    assert (update.acknowledged_by, update.acknowledged_at, update.ack_note) == ("alice", NOW, "查看中")
    assert opened.acknowledged_by is None

    resolved = ops.operator_action(_engine(matcher), opened.alert_id, "resolve", "bob", "已联系客户")
    assert resolved.status == AlertStatus.resolved and resolved.revision == 3
    assert any(r.startswith("人工解决 (bob): 已联系客户") for r in resolved.reasons)
    assert resolved.acknowledged_by == "alice"  # every later event carries the acknowledgement
    assert alert_states(store) == [] and len(alert_states(store, open_only=False)) == 1
    with pytest.raises(ValueError, match="already resolved"):
        ops.operator_action(_engine(matcher), opened.alert_id, "resolve", "bob")
    with pytest.raises(ValueError, match="no alert"):
        ops.operator_action(_engine(matcher), "nope", "ack", "bob")
    # Both operator events are logged for publication.
    with store.connect() as conn:
        statuses = [r.status for r in conn.execute(sa.select(alert_events.c.status).order_by(alert_events.c.id))]
    assert statuses == ["open", "update", "update", "resolved"]


@pytest.mark.broker
def test_alerts_list_ack_resolve_commands(kafka_settings, matcher: TermMatcher) -> None:
    from consumers.kafka_io import read_topic
    from consumers.store import make_engine, migrate
    from pipelines.cli import app
    from topics.schemas import Alert
    from topics.serde import decode
    from topics.specs import ALERTS

    store = make_engine(kafka_settings.store.url)
    migrate(store)
    stage = AlerterStage(kafka_settings.alerts, store, matcher, clock=lambda: NOW)
    alert_id = process_batch(stage, messages([enriched("吃了你们的外卖食物中毒了", event_id="b1", score=-0.9)])).outputs[0].event.alert_id
    env = {
        "FEEDBACK_MINER_KAFKA__BOOTSTRAP_SERVERS": kafka_settings.kafka.bootstrap_servers,
        "FEEDBACK_MINER_KAFKA__TOPIC_PREFIX": kafka_settings.kafka.topic_prefix,
        "FEEDBACK_MINER_STORE__URL": kafka_settings.store.url,
    }
    runner = CliRunner()
    listed = runner.invoke(app, ["alerts", "list"], env=env)
    assert listed.exit_code == 0 and alert_id in listed.stdout and "+08:00" in listed.stdout
    acked = runner.invoke(app, ["alerts", "ack", alert_id, "--note", "on it", "--by", "carol"], env=env)
    assert acked.exit_code == 0, acked.output
    shown = runner.invoke(app, ["alerts", "list"], env=env)
    assert "已确认: carol" in shown.stdout and "on it" in shown.stdout
    raw = runner.invoke(app, ["alerts", "list", "--raw"], env=env)
    assert json.loads(raw.stdout.splitlines()[0])["acknowledged_by"] == "carol"
    done = runner.invoke(app, ["alerts", "resolve", alert_id, "--note", "fixed"], env=env)
    assert done.exit_code == 0, done.output
    again = runner.invoke(app, ["alerts", "resolve", alert_id], env=env)
    assert again.exit_code == 2 and "already resolved" in again.output
    published = [decode(Alert, r.value) for r in read_topic(kafka_settings, ALERTS)]
    assert [(a.alert_id, a.status.value) for a in published] == [(alert_id, "update"), (alert_id, "resolved")]
    assert [(a.acknowledged_by, a.ack_note) for a in published] == [("carol", "on it"), ("carol", "on it")]
    tail = runner.invoke(app, ["alerts", "tail", "--from-beginning", "--max", "2", "--timeout", "10"], env=env)
    assert tail.exit_code == 0 and tail.stdout.count("已确认: carol") == 2 and "+08:00" in tail.stdout, tail.output
    store.dispose()
