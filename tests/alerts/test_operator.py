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
    assert " 进行中 " in listed.stdout  # the status words alerts tail uses, not English ones
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
    assert " 已恢复 " in runner.invoke(app, ["alerts", "list", "--all"], env=env).stdout
    published = [decode(Alert, r.value) for r in read_topic(kafka_settings, ALERTS)]
    assert [(a.alert_id, a.status.value) for a in published] == [(alert_id, "update"), (alert_id, "resolved")]
    assert [(a.acknowledged_by, a.ack_note) for a in published] == [("carol", "on it"), ("carol", "on it")]
    tail = runner.invoke(app, ["alerts", "tail", "--from-beginning", "--max", "2", "--timeout", "10"], env=env)
    assert tail.exit_code == 0 and tail.stdout.count("已确认: carol") == 2 and "+08:00" in tail.stdout, tail.output
    store.dispose()


def _health_memory_with_open_alert():
    from pipelines.health import HealthMemory, Observation, StageLag, alerts_for, judge
    from topics.settings import HealthSettings

    obs = Observation(T0, {"enricher": StageLag("enricher", 5000, 10)})
    findings, memory = judge(obs, HealthMemory(), HealthSettings(max_lag=1000))
    opened = alerts_for(findings, memory, T0)
    assert [a.status for a in opened] == [AlertStatus.open]
    return memory, opened[0]


def test_health_alerts_can_be_acknowledged_and_resolved() -> None:
    # Health alerts (pipelines/health.py) are not in the alerter's tables: their memory holds them.
    from pipelines.health import (
        HealthMemory,
        Observation,
        StageLag,
        alerts_for,
        judge,
        operator_action,
    )
    from topics.settings import HealthSettings

    memory, opened = _health_memory_with_open_alert()
    acked = operator_action(memory, opened.alert_id, "ack", "alice", "扩容中", T0 + minutes(2))
    assert acked.alert_id == opened.alert_id and acked.status == AlertStatus.update and acked.revision == 1
    assert (acked.acknowledged_by, acked.ack_note) == ("alice", "扩容中") and acked.reasons[0].startswith("已确认: alice")
    assert acked.title == opened.title and acked.summary == opened.summary and acked.kind == opened.kind
    # The acknowledgement survives the memory's round trip through the store (JSON) ...
    memory = HealthMemory.from_json(json.loads(json.dumps(memory.to_json())))
    assert memory.open_alerts["stage:enricher:lag"].acknowledged_by == "alice"
    # ... and the automatic resolution, when the lag clears, carries it with the next revision.
    findings, memory = judge(Observation(T0 + minutes(5), {"enricher": StageLag("enricher", 0, 5010)}), memory,
                             HealthSettings(max_lag=1000))
    resolved = [a for a in alerts_for(findings, memory, T0 + minutes(5)) if a.alert_id == opened.alert_id]
    assert [(a.status, a.revision, a.acknowledged_by) for a in resolved] == [(AlertStatus.resolved, 2, "alice")]

    # Resolved by hand: the resolution event, and the alert is no longer open (a check still firing opens a new one).
    memory, opened = _health_memory_with_open_alert()
    done = operator_action(memory, opened.alert_id, "resolve", "bob", "重启了 enricher", T0 + minutes(3))
    assert done.status == AlertStatus.resolved and done.revision == 1 and done.reasons[0] == "人工解决 (bob): 重启了 enricher"
    assert memory.open_alerts == {}
    with pytest.raises(ValueError, match="no open health alert"):
        operator_action(memory, opened.alert_id, "ack", "bob", None, T0)


@pytest.mark.broker
def test_alerts_ack_and_resolve_commands_find_health_alerts(kafka_settings) -> None:
    from consumers.kafka_io import read_topic
    from consumers.store import make_engine, migrate
    from pipelines.cli import app
    from pipelines.pipeline_probe import load_memory, save_memory
    from topics.schemas import Alert
    from topics.serde import decode
    from topics.specs import ALERTS

    store = make_engine(kafka_settings.store.url)
    migrate(store)
    memory, opened = _health_memory_with_open_alert()
    save_memory(store, memory)
    env = {
        "FEEDBACK_MINER_KAFKA__BOOTSTRAP_SERVERS": kafka_settings.kafka.bootstrap_servers,
        "FEEDBACK_MINER_KAFKA__TOPIC_PREFIX": kafka_settings.kafka.topic_prefix,
        "FEEDBACK_MINER_STORE__URL": kafka_settings.store.url,
    }
    runner = CliRunner()
    acked = runner.invoke(app, ["alerts", "ack", opened.alert_id, "--note", "on it", "--by", "carol"], env=env)
    assert acked.exit_code == 0, acked.output
    assert load_memory(store).open_alerts["stage:enricher:lag"].acknowledged_by == "carol"
    done = runner.invoke(app, ["alerts", "resolve", opened.alert_id, "--by", "carol"], env=env)
    assert done.exit_code == 0, done.output
    assert load_memory(store).open_alerts == {}
    again = runner.invoke(app, ["alerts", "resolve", opened.alert_id], env=env)
    assert again.exit_code == 2 and "no alert" in again.output
    published = [decode(Alert, r.value) for r in read_topic(kafka_settings, ALERTS)]
    assert [(a.alert_id, a.kind.value, a.status.value, a.revision) for a in published] == [
        (opened.alert_id, "health", "update", 1), (opened.alert_id, "health", "resolved", 2)]
    assert all(a.acknowledged_by == "carol" for a in published)
    store.dispose()


def test_alerts_list_shows_open_health_alerts(tmp_path) -> None:
    from consumers.store import make_engine, migrate
    from pipelines.cli import app
    from pipelines.pipeline_probe import save_memory

    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = make_engine(url)
    migrate(store)
    memory, opened = _health_memory_with_open_alert()
    save_memory(store, memory)
    store.dispose()
    runner = CliRunner()
    listed = runner.invoke(app, ["alerts", "list"], env={"FEEDBACK_MINER_STORE__URL": url})
    assert listed.exit_code == 0, listed.output
    assert opened.alert_id in listed.stdout and "health stage:enricher:lag" in listed.stdout and "未确认" in listed.stdout
    raw = runner.invoke(app, ["alerts", "list", "--raw"], env={"FEEDBACK_MINER_STORE__URL": url})
    row = json.loads(raw.stdout.splitlines()[0])
    assert (row["kind"], row["alert_id"], row["key"]) == ("health", opened.alert_id, "stage:enricher:lag")


def test_an_alert_reads_its_summary_once_and_every_other_reason() -> None:
    """A spike's first reason is its summary line: shown once, then the reasons that add to it."""
    from pipelines.cli.alerts import render_alert
    from topics.schemas import Alert, AlertKind, Priority

    summary = "技术故障 5 分钟 8 条, 基线预期 0.5 条 (16.6 倍)"
    alert = Alert(alert_id="a1", revision=0, priority=Priority.P2, kind=AlertKind.spike, key="issue_type:technical",
                  status=AlertStatus.open, title="技术故障反馈量激增", summary=summary,
                  reasons=[summary, "影响: 16.6 倍基线, 8 条"], count=8, total_count=8, first_seen=T0, last_seen=T0)
    text = render_alert(alert).plain
    assert text.count(summary) == 1 and "• 影响: 16.6 倍基线, 8 条" in text and "未确认" in text


def test_an_alert_shows_its_id_on_a_line_of_its_own() -> None:
    """The id is what `alerts ack` takes: it starts a line, whole, not broken off the end of the counts line."""
    from pipelines.cli.alerts import render_alert
    from topics.schemas import Alert, AlertKind, Priority

    alert = Alert(alert_id="cc1b961d699b45c3bea58bfaf99a8cee", revision=1, priority=Priority.P1, kind=AlertKind.spike,
                  key="issue_type:technical", status=AlertStatus.open, title="技术故障反馈量激增", summary="技术故障 15 分钟 15 条",
                  reasons=[], count=15, total_count=15, first_seen=T0, last_seen=T0)
    lines = [line.strip() for line in render_alert(alert).plain.splitlines()]
    assert any(line.startswith("id cc1b961d699b45c3bea58bfaf99a8cee r1 · sent ") for line in lines)
    assert "count 15 · total 15 · spike issue_type:technical" in lines
