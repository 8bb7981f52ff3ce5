"""Reading the running pipeline's state: consumer lag per stage, dead letters, open alerts, store and model.

The edges shared by the ``pipeline_health`` flow and the live view of
``feedback-miner up``; the judging is pure, in ``pipelines/health.py``.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

import sqlalchemy as sa
from kafka import KafkaAdminClient, TopicPartition
from kafka.admin import OffsetSpec

from pipelines.health import HealthMemory, StageLag
from topics.settings import Settings
from topics.specs import DEADLETTER

log = logging.getLogger(__name__)

# The health flow's memory row in ``health_state`` (migration m0400).
MEMORY_ROW = "pipeline_health"
_health_state = sa.Table(
    "health_state",
    sa.MetaData(),
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)


def stage_inputs() -> dict[str, str]:
    """Each stage's input topic (logical name), from the stage classes themselves."""
    from consumers.alerter.stage import AlerterStage
    from consumers.enricher.stage import EnricherStage
    from consumers.normalizer import NormalizerStage

    return {cls.name: cls.input_topic for cls in (NormalizerStage, EnricherStage, AlerterStage)}


def _partitions(admin: KafkaAdminClient, topic: str) -> list[TopicPartition]:
    described = admin.describe_topics([topic])
    return [TopicPartition(topic, p["partition_index"]) for t in described for p in t["partitions"]]


def end_offsets(admin: KafkaAdminClient, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
    if not partitions:
        return {}
    latest = admin.list_partition_offsets({tp: OffsetSpec.LATEST for tp in partitions})
    return {tp: found.offset for tp, found in latest.items()}


def stage_lags(admin: KafkaAdminClient, settings: Settings, stages: list[str]) -> dict[str, StageLag]:
    """Lag (end offset − committed, never negative) and committed offsets of each stage's group on its input topic.

    A partition the group never committed counts from its earliest offset (the stages start there).
    """
    inputs = stage_inputs()
    unknown = [s for s in stages if s not in inputs]
    if unknown:
        raise ValueError(f"unknown stage(s) {', '.join(unknown)}; known: {', '.join(inputs)}")
    groups = {stage: settings.group_id(stage) for stage in stages}
    committed_by_group = admin.list_group_offsets({group: None for group in groups.values()})
    lags: dict[str, StageLag] = {}
    for stage in stages:
        partitions = _partitions(admin, settings.topic(inputs[stage]))
        ends = end_offsets(admin, partitions)
        committed = committed_by_group.get(groups[stage]) or {}
        missing = [tp for tp in partitions if tp not in committed or committed[tp].offset < 0]
        earliest = {}
        if missing:
            found = admin.list_partition_offsets({tp: OffsetSpec.EARLIEST for tp in missing})
            earliest = {tp: f.offset for tp, f in found.items()}
        lag = total = 0
        for tp in partitions:
            position = committed[tp].offset if tp not in earliest else earliest[tp]
            lag += max(0, ends.get(tp, 0) - position)
            total += committed[tp].offset if tp not in earliest else 0
        lags[stage] = StageLag(stage, lag, total)
    return lags


def deadletter_count(admin: KafkaAdminClient, settings: Settings) -> int:
    return sum(end_offsets(admin, _partitions(admin, settings.topic(DEADLETTER))).values())


def check_store(engine: sa.Engine) -> str | None:
    """None when the store answers a query, else the error in one line."""
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return None
    except Exception as exc:  # noqa: BLE001 - any failure is the finding
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def check_model(settings: Settings) -> str | None:
    """None when the production model loads and predicts one text, else the error in one line."""
    try:
        from pipelines.enrichment import production_model

        prediction = production_model(settings).predict(["快递三天还没到，客服也不回复"])
        if len(prediction) != 1:
            return f"the model returned {len(prediction)} predictions for one text"
        return None
    except Exception as exc:  # noqa: BLE001 - any failure is the finding
        return f"{type(exc).__name__}: {exc}"


def load_memory(engine: sa.Engine) -> HealthMemory:
    with engine.connect() as conn:
        value = conn.execute(sa.select(_health_state.c.value).where(_health_state.c.name == MEMORY_ROW)).scalar()
    return HealthMemory.from_json(json.loads(value) if value else None)


def save_memory(engine: sa.Engine, memory: HealthMemory) -> None:
    from consumers.store.db import upsert

    row = {"name": MEMORY_ROW, "value": json.dumps(memory.to_json(), ensure_ascii=False), "updated_at": datetime.now(timezone.utc)}
    with engine.begin() as conn:
        upsert(conn, _health_state, [row], ["name"])


def open_alert_count(engine: sa.Engine) -> int:
    """Open alerts: the alerter's (in its state tables) plus the health flow's."""
    from consumers.alerter.state import alert_states

    count = len(alert_states(engine, open_only=True))
    try:
        count += len(load_memory(engine).open_alerts)
    except sa.exc.SQLAlchemyError:
        pass  # no health run yet on an old store
    return count
