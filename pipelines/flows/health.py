"""The ``pipeline_health`` flow (every minute): lag, dead letters, a stalled stage, store and model errors.

Each run observes the pipeline (``pipelines/pipeline_probe.py``), judges it
against the previous run (``pipelines/health.py``), publishes ``health`` alerts on
``feedback.alerts`` (opened, and resolved once the check clears) and keeps its
memory in the store. While the store itself is down, the memory goes to a file
under ``data_dir/health/`` so the store alert is resolved once it is back.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa
from prefect import flow, get_run_logger

from pipelines.health import HealthMemory, Observation, alerts_for, judge, model_check_due
from topics.schemas import Alert
from topics.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class HealthReport:
    lags: dict[str, int] = field(default_factory=dict)
    deadletters: int | None = None
    firing: list[str] = field(default_factory=list)
    published: list[Alert] = field(default_factory=list)
    store_error: str | None = None
    model_checked: bool = False

    def to_json(self) -> dict:
        return {
            "lags": self.lags,
            "deadletters": self.deadletters,
            "firing": self.firing,
            "published": [{"alert_id": a.alert_id, "key": a.key, "status": a.status.value, "revision": a.revision} for a in self.published],
            "store_error": self.store_error,
            "model_checked": self.model_checked,
        }


def _fallback_path(settings: Settings) -> Path:
    return settings.data_dir / "health" / "memory-while-store-down.json"


def _load(settings: Settings, engine: sa.Engine) -> tuple[HealthMemory, str | None]:
    """The previous run's memory and the store's error (None when it answered)."""
    from consumers.store import migrate
    from pipelines.pipeline_probe import check_store, load_memory

    fallback = _fallback_path(settings)
    kept = HealthMemory.from_json(json.loads(fallback.read_text(encoding="utf-8"))) if fallback.is_file() else None
    error = check_store(engine)
    if error is None:
        try:
            migrate(engine)
            memory = load_memory(engine)
        except sa.exc.SQLAlchemyError as exc:
            error = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        else:
            if kept is not None and "store:error" in kept.open_alerts:
                # The store is back: the alert opened while it was down is resolved by this run.
                memory.open_alerts["store:error"] = kept.open_alerts["store:error"]
            return memory, None
    return kept or HealthMemory(), error


def _save(settings: Settings, engine: sa.Engine, memory: HealthMemory, store_error: str | None) -> None:
    from pipelines.pipeline_probe import save_memory

    fallback = _fallback_path(settings)
    if store_error is None:
        save_memory(engine, memory)
        fallback.unlink(missing_ok=True)
        return
    fallback.parent.mkdir(parents=True, exist_ok=True)
    fallback.write_text(json.dumps(memory.to_json(), ensure_ascii=False), encoding="utf-8")


def _publish(settings: Settings, alerts: list[Alert]) -> None:
    from consumers.kafka_io import make_producer, send
    from topics.specs import ALERTS

    producer = make_producer(settings)
    try:
        for alert in alerts:
            send(producer, settings.topic(ALERTS), alert, alert.partition_key()).get(timeout=settings.kafka.request_timeout_ms / 1000)
        producer.flush()
    finally:
        producer.close()


def run_health_check(settings: Settings, now: datetime | None = None) -> HealthReport:
    """One health run: observe, judge against the last run, publish alerts, remember."""
    from consumers.store import make_engine
    from pipelines.pipeline_probe import check_model, deadletter_count, stage_lags
    from topics.admin import admin_client

    now = now or datetime.now(timezone.utc)
    engine = make_engine(settings.store.url)
    try:
        memory, store_error = _load(settings, engine)
        admin = admin_client(settings)
        try:
            lags = stage_lags(admin, settings, settings.health.stages)
            deadletters = deadletter_count(admin, settings)
        finally:
            admin.close()
        checked = model_check_due(memory, now, settings.health)
        model_error = check_model(settings) if checked else None
        observation = Observation(now, lags, deadletters, store_error, model_error, checked)
        findings, next_memory = judge(observation, memory, settings.health)
        alerts = alerts_for(findings, next_memory, now)
        # Published before the memory is saved: a failed save re-judges next run, never loses an alert.
        _publish(settings, alerts)
        _save(settings, engine, next_memory, store_error)
    finally:
        engine.dispose()
    return HealthReport(
        lags={name: lag.lag for name, lag in lags.items()},
        deadletters=deadletters,
        firing=[f.key for f in findings if f.firing],
        published=alerts,
        store_error=store_error,
        model_checked=checked,
    )


@flow(name="pipeline-health")
def pipeline_health_flow() -> dict:
    """Check consumer lag, dead-letter growth, stalled stages, the store and the model; alert on feedback.alerts."""
    settings = Settings()
    if not settings.kafka.bootstrap_servers:
        raise ValueError("pipeline-health needs FEEDBACK_MINER_KAFKA__BOOTSTRAP_SERVERS (the broker the stages use)")
    report = run_health_check(settings)
    logger = get_run_logger()
    lags = ", ".join(f"{k} {v}" for k, v in report.lags.items())
    logger.info("lag: %s; dead letters %s; firing: %s", lags, report.deadletters, ", ".join(report.firing) or "nothing")
    for alert in report.published:
        logger.warning("health alert %s %s: %s", alert.status.value, alert.key, alert.title)
    return report.to_json()


# The name the issue and the docs use.
pipeline_health = pipeline_health_flow
