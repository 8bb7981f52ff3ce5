"""The pipeline_health flow on a real broker and store: lag, a stall, dead letters, store and model errors.

A stage's consumer group is made to lag by committing its offsets behind the
input topic's end (what a slow or stopped stage leaves), through the broker's
own admin API; each check opens one ``health`` alert and resolves it (same id,
next revision) once it clears.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata

from consumers.kafka_io import make_producer, read_topic
from pipelines.flows.health import run_health_check
from pipelines.health import HealthMemory, Observation, StageLag, alerts_for, judge
from topics.admin import admin_client
from topics.schemas import Alert, AlertKind, AlertStatus, Priority
from topics.serde import decode
from topics.settings import HealthSettings, Settings
from topics.specs import ALERTS, DEADLETTER, NORMALIZED

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=timezone.utc)


def _with_health(settings: Settings, **health) -> Settings:
    return settings.model_copy(update={"health": settings.health.model_copy(update={"check_model": False, **health})})


def _produce(settings: Settings, topic: str, n: int) -> None:
    # One send at a time: the embedded broker reports a multi-record batch's end offset too low.
    producer = make_producer(settings)
    try:
        for i in range(n):
            producer.send(settings.topic(topic), f'{{"n": {i}}}'.encode(), partition=0).get(timeout=10)
    finally:
        producer.close()


def _commit(settings: Settings, stage: str, topic: str, offset: int) -> None:
    admin = admin_client(settings)
    try:
        tp = TopicPartition(settings.topic(topic), 0)
        admin.alter_group_offsets(settings.group_id(stage), {tp: OffsetAndMetadata(offset, "", -1)})
    finally:
        admin.close()


def _alerts(settings: Settings) -> list[Alert]:
    return [decode(Alert, r.value, list(r.headers or [])) for r in read_topic(settings, ALERTS, quiet_s=0.5)]


def test_a_lagging_stage_opens_one_health_alert_and_resolves_it_when_the_lag_clears(kafka_settings):
    settings = _with_health(kafka_settings, max_lag=5)
    _produce(settings, NORMALIZED, 8)
    _commit(settings, "enricher", NORMALIZED, 1)

    first = run_health_check(settings, T0)
    assert first.lags == {"normalizer": 0, "enricher": 7, "alerter": 0}
    assert [(a.key, a.status) for a in first.published] == [("stage:enricher:lag", AlertStatus.open)]
    # Still lagging a minute later: the alert stays open, nothing new is published.
    assert run_health_check(settings, T0 + timedelta(minutes=1)).published == []

    _commit(settings, "enricher", NORMALIZED, 8)
    cleared = run_health_check(settings, T0 + timedelta(minutes=2))
    assert cleared.lags["enricher"] == 0 and cleared.firing == []

    alerts = _alerts(settings)
    assert [(a.key, a.status, a.revision) for a in alerts] == [
        ("stage:enricher:lag", AlertStatus.open, 0), ("stage:enricher:lag", AlertStatus.resolved, 1)]
    opened, resolved = alerts
    assert opened.alert_id == resolved.alert_id
    assert (opened.kind, opened.priority, opened.count, opened.baseline) == (AlertKind.health, Priority.P3, 7, 5.0)
    assert "enricher" in opened.title and resolved.first_seen == opened.first_seen


def test_a_stage_that_commits_nothing_while_its_lag_grows_is_stalled(kafka_settings):
    settings = _with_health(kafka_settings, stalled_after_min=5)
    _produce(settings, NORMALIZED, 3)
    _commit(settings, "enricher", NORMALIZED, 1)
    assert run_health_check(settings, T0).published == []
    _produce(settings, NORMALIZED, 2)
    # Four minutes without a commit: not yet.
    assert run_health_check(settings, T0 + timedelta(minutes=4)).published == []
    stalled = run_health_check(settings, T0 + timedelta(minutes=6))
    assert [(a.key, a.priority) for a in stalled.published] == [("stage:enricher:stalled", Priority.P2)]
    # It commits again: resolved.
    _commit(settings, "enricher", NORMALIZED, 3)
    moving = run_health_check(settings, T0 + timedelta(minutes=7))
    assert [(a.key, a.status, a.revision) for a in moving.published] == [("stage:enricher:stalled", AlertStatus.resolved, 1)]


def test_dead_letter_growth_alerts_and_clears(kafka_settings):
    settings = _with_health(kafka_settings, deadletter_growth=3)
    run_health_check(settings, T0)
    _produce(settings, DEADLETTER, 4)
    grown = run_health_check(settings, T0 + timedelta(minutes=1))
    assert [(a.key, a.count) for a in grown.published] == [("deadletter:growth", 4)]
    quiet = run_health_check(settings, T0 + timedelta(minutes=2))
    assert [(a.key, a.status) for a in quiet.published] == [("deadletter:growth", AlertStatus.resolved)]


def test_an_unreachable_store_alerts_p1_and_is_resolved_when_it_answers_again(kafka_settings):
    working = _with_health(kafka_settings)
    run_health_check(working, T0)
    # A PostgreSQL nobody listens on (port 9 on loopback refuses at once).
    down = working.model_copy(update={"store": working.store.model_copy(
        update={"url": "postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=2"})})
    outage = run_health_check(down, T0 + timedelta(minutes=1))
    assert outage.store_error and [(a.key, a.priority) for a in outage.published] == [("store:error", Priority.P1)]
    assert run_health_check(down, T0 + timedelta(minutes=2)).published == []  # still down: no second alert
    back = run_health_check(working, T0 + timedelta(minutes=3))
    assert back.store_error is None
    assert [(a.key, a.status, a.alert_id) for a in back.published] == [
        ("store:error", AlertStatus.resolved, outage.published[0].alert_id)]


def test_a_model_that_does_not_load_alerts(kafka_settings, tmp_path: Path):
    not_a_dir = tmp_path / "model-is-a-file"
    not_a_dir.write_text("not a model")
    broken = _with_health(kafka_settings, check_model=True, model_check_interval_min=30).model_copy(
        update={"model": kafka_settings.model.model_copy(update={"dir": not_a_dir})})
    report = run_health_check(broken, T0)
    assert report.model_checked and [(a.key, a.priority) for a in report.published] == [("model:error", Priority.P2)]
    # Not checked again within the interval: the verdict stands, no new event.
    later = run_health_check(broken, T0 + timedelta(minutes=1))
    assert not later.model_checked and later.firing == ["model:error"] and later.published == []


def test_judging_is_pure_and_forgets_a_new_broker():
    settings = HealthSettings(max_lag=10, stalled_after_min=2)
    memory = HealthMemory()
    obs = Observation(T0, {"enricher": StageLag("enricher", 50, 100)}, deadletters=7)
    findings, memory = judge(obs, memory, settings)
    assert {f.key for f in findings if f.firing} == {"stage:enricher:lag"}
    assert len(alerts_for(findings, memory, T0)) == 1
    # A new embedded broker: offsets and the dead-letter count start again from 0, nothing is "stalled" or "grown".
    restarted = Observation(T0 + timedelta(minutes=5), {"enricher": StageLag("enricher", 3, 0)}, deadletters=2)
    findings, memory = judge(restarted, memory, settings)
    assert [f.key for f in findings if f.firing] == []
    resolved = alerts_for(findings, memory, restarted.at)
    assert [(a.key, a.status) for a in resolved] == [("stage:enricher:lag", AlertStatus.resolved)]
    assert memory.open_alerts == {}
    assert HealthMemory.from_json(memory.to_json()) == memory


def test_the_health_command_reports_and_exits_1_while_something_fires(kafka_settings, monkeypatch):
    from typer.testing import CliRunner

    from pipelines.cli import app

    env = {
        "FEEDBACK_MINER_KAFKA__BOOTSTRAP_SERVERS": kafka_settings.kafka.bootstrap_servers,
        "FEEDBACK_MINER_KAFKA__TOPIC_PREFIX": kafka_settings.kafka.topic_prefix,
        "FEEDBACK_MINER_KAFKA__GROUP_PREFIX": kafka_settings.kafka.group_prefix,
        "FEEDBACK_MINER_STORE__URL": kafka_settings.store.url,
        "FEEDBACK_MINER_DATA_DIR": str(kafka_settings.data_dir),
        "FEEDBACK_MINER_HEALTH__CHECK_MODEL": "false",
        "FEEDBACK_MINER_HEALTH__MAX_LAG": "2",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()
    healthy = runner.invoke(app, ["health"])
    assert healthy.exit_code == 0 and "healthy" in healthy.output, healthy.output
    _produce(kafka_settings, NORMALIZED, 3)
    lagging = runner.invoke(app, ["health"])
    assert lagging.exit_code == 1, lagging.output
    assert "enricher 3" in lagging.output and "open P3 stage:enricher:lag" in lagging.output
