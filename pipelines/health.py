"""The pipeline's own health, judged from one observation and the memory of the previous run.

Pure: an observation (lag per stage, the dead-letter count, store and model
errors) and the memory the last run left go in; the ``health`` alerts to publish
and the memory for the next run come out. The flow (``pipelines/flows/health.py``)
gathers the observation from Kafka, the store and the model, publishes the alerts
and keeps the memory in the store.

Every check has a key (``stage:enricher:lag``); a key that fires opens one alert
(``status=open``, revision 0), a key still firing later keeps it open without a
new event, and a key that cleared resolves it (same ``alert_id``, revision + 1).
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from topics.schemas import Alert, AlertKind, AlertStatus, Priority
from topics.settings import HealthSettings


@dataclass(frozen=True)
class StageLag:
    """One stage's consumer group against its input topic, summed over partitions."""

    stage: str
    lag: int
    committed: int


@dataclass(frozen=True)
class Observation:
    at: datetime
    stages: dict[str, StageLag]
    # End offsets of feedback.deadletter, summed; None when not read.
    deadletters: int | None = None
    store_error: str | None = None
    # None also when the model was not checked this run (see ``model_check_due``).
    model_error: str | None = None
    model_checked: bool = False


@dataclass
class StageMemory:
    lag: int
    committed: int
    # Last time the group committed something or had nothing to do.
    progress_at: datetime


@dataclass
class OpenHealthAlert:
    alert_id: str
    revision: int
    priority: str
    title: str
    first_seen: datetime
    # What the open event said (an acknowledgement re-publishes it), and who took it (``alerts ack``).
    summary: str = ""
    reasons: list[str] = field(default_factory=list)
    count: int = 0
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    ack_note: str | None = None


@dataclass
class HealthMemory:
    """What one run leaves for the next (kept in the store as JSON)."""

    stages: dict[str, StageMemory] = field(default_factory=dict)
    deadletters: int | None = None
    model_checked_at: datetime | None = None
    # The last model check's error stays the verdict until the next check.
    model_error: str | None = None
    open_alerts: dict[str, OpenHealthAlert] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        def stamp(value):
            return value.isoformat() if isinstance(value, datetime) else value

        return {
            "stages": {k: {**asdict(v), "progress_at": stamp(v.progress_at)} for k, v in self.stages.items()},
            "deadletters": self.deadletters,
            "model_checked_at": stamp(self.model_checked_at),
            "model_error": self.model_error,
            "open_alerts": {k: {**asdict(v), "first_seen": stamp(v.first_seen), "acknowledged_at": stamp(v.acknowledged_at)}
                            for k, v in self.open_alerts.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> HealthMemory:
        if not data:
            return cls()
        parse = datetime.fromisoformat
        return cls(
            stages={k: StageMemory(v["lag"], v["committed"], parse(v["progress_at"])) for k, v in data.get("stages", {}).items()},
            deadletters=data.get("deadletters"),
            model_checked_at=parse(data["model_checked_at"]) if data.get("model_checked_at") else None,
            model_error=data.get("model_error"),
            open_alerts={k: OpenHealthAlert(
                v["alert_id"], v["revision"], v["priority"], v["title"], parse(v["first_seen"]), v.get("summary", ""),
                list(v.get("reasons", [])), v.get("count", 0), v.get("acknowledged_by"),
                parse(v["acknowledged_at"]) if v.get("acknowledged_at") else None, v.get("ack_note"))
                for k, v in data.get("open_alerts", {}).items()},
        )


@dataclass(frozen=True)
class Finding:
    """One check's verdict this run; only firing findings carry a message."""

    key: str
    firing: bool
    priority: Priority = Priority.P3
    title: str = ""
    summary: str = ""
    reasons: tuple[str, ...] = ()
    count: int = 0
    observed: float | None = None
    baseline: float | None = None


def model_check_due(memory: HealthMemory, now: datetime, settings: HealthSettings) -> bool:
    if not settings.check_model:
        return False
    last = memory.model_checked_at
    return last is None or now - last >= timedelta(minutes=settings.model_check_interval_min)


def _stage_findings(obs: Observation, memory: HealthMemory, settings: HealthSettings) -> tuple[list[Finding], dict[str, StageMemory]]:
    findings: list[Finding] = []
    stages: dict[str, StageMemory] = {}
    stall = timedelta(minutes=settings.stalled_after_min)
    for name, now_lag in obs.stages.items():
        before = memory.stages.get(name)
        # Offsets going backwards mean a new (embedded) broker: start this stage's memory over.
        fresh = before is None or now_lag.committed < before.committed
        moved = fresh or now_lag.committed > before.committed
        progress_at = obs.at if moved or now_lag.lag == 0 else before.progress_at
        stages[name] = StageMemory(now_lag.lag, now_lag.committed, progress_at)

        lag_key = f"stage:{name}:lag"
        if now_lag.lag > settings.max_lag:
            findings.append(Finding(
                lag_key, True, Priority.P3,
                title=f"{name} 积压 {now_lag.lag} 条 (consumer lag)",
                summary=f"stage {name} has {now_lag.lag} input events not yet committed (threshold {settings.max_lag})",
                reasons=(f"lag {now_lag.lag} > {settings.max_lag}",),
                count=now_lag.lag, observed=float(now_lag.lag), baseline=float(settings.max_lag)))
        else:
            findings.append(Finding(lag_key, False))

        stalled_for = obs.at - progress_at
        growing = not fresh and now_lag.lag > 0 and now_lag.lag >= before.lag
        stalled_key = f"stage:{name}:stalled"
        if growing and stalled_for >= stall:
            minutes = stalled_for.total_seconds() / 60
            findings.append(Finding(
                stalled_key, True, Priority.P2,
                title=f"{name} 停滞 {minutes:.0f} 分钟 (stalled)",
                summary=f"stage {name} committed nothing for {minutes:.1f} min while its lag grew to {now_lag.lag}",
                reasons=(f"no commit since {progress_at.isoformat(timespec='seconds')}",
                         f"lag {before.lag} → {now_lag.lag}"),
                count=now_lag.lag, observed=round(minutes, 2), baseline=settings.stalled_after_min))
        elif now_lag.lag == 0 or moved:
            findings.append(Finding(stalled_key, False))
        # Lag steady or shrinking without a commit: neither fires nor clears (a slow batch in flight).
    return findings, stages


def _deadletter_finding(obs: Observation, memory: HealthMemory, settings: HealthSettings) -> Finding | None:
    if obs.deadletters is None:
        return None
    before = memory.deadletters
    if before is None:
        return Finding("deadletter:growth", False)
    # A count below the last one means a new broker: everything on it is new.
    growth = obs.deadletters - before if obs.deadletters >= before else obs.deadletters
    if growth >= settings.deadletter_growth:
        return Finding(
            "deadletter:growth", True, Priority.P3,
            title=f"死信增加 {growth} 条 (dead letters)",
            summary=f"{growth} messages were dead-lettered since the previous health check (threshold {settings.deadletter_growth})",
            reasons=(f"dead letters {before} → {obs.deadletters}", "see `feedback-miner tail feedback.deadletter`, then `replay`"),
            count=growth, observed=float(growth), baseline=float(settings.deadletter_growth))
    return Finding("deadletter:growth", False)


def _error_findings(obs: Observation, memory: HealthMemory) -> list[Finding]:
    findings = []
    if obs.store_error:
        findings.append(Finding("store:error", True, Priority.P1, title="存储不可用 (store error)",
                                summary=f"the store does not answer: {obs.store_error[:300]}", reasons=(obs.store_error[:500],), count=1))
    else:
        findings.append(Finding("store:error", False))
    model_error = obs.model_error if obs.model_checked else memory.model_error
    if model_error:
        findings.append(Finding("model:error", True, Priority.P2, title="模型无法预测 (model error)",
                                summary=f"the model does not load or predict: {model_error[:300]}", reasons=(model_error[:500],), count=1))
    elif obs.model_checked:
        findings.append(Finding("model:error", False))
    return findings


def judge(obs: Observation, memory: HealthMemory, settings: HealthSettings) -> tuple[list[Finding], HealthMemory]:
    """Every check's verdict this run, and the memory for the next run (open alerts unchanged)."""
    findings, stages = _stage_findings(obs, memory, settings)
    deadletter = _deadletter_finding(obs, memory, settings)
    if deadletter is not None:
        findings.append(deadletter)
    findings += _error_findings(obs, memory)
    # Stages not observed this run (e.g. the list changed) are forgotten.
    new_memory = HealthMemory(
        stages=stages,
        deadletters=obs.deadletters if obs.deadletters is not None else memory.deadletters,
        model_checked_at=obs.at if obs.model_checked else memory.model_checked_at,
        model_error=obs.model_error if obs.model_checked else memory.model_error,
        open_alerts=dict(memory.open_alerts),
    )
    return findings, new_memory


def alerts_for(findings: list[Finding], memory: HealthMemory, now: datetime) -> list[Alert]:
    """Open an alert for each newly firing key, resolve each open one whose key cleared; updates ``memory.open_alerts``."""
    alerts: list[Alert] = []
    for finding in findings:
        opened = memory.open_alerts.get(finding.key)
        if finding.firing and opened is None:
            alert = _alert(finding, str(uuid.uuid4()), 0, AlertStatus.open, now, now)
            memory.open_alerts[finding.key] = OpenHealthAlert(alert.alert_id, 0, finding.priority.value, finding.title, now,
                                                              finding.summary, list(finding.reasons), finding.count)
            alerts.append(alert)
        elif not finding.firing and opened is not None:
            cleared = Finding(finding.key, False, Priority(opened.priority), title=f"已恢复: {opened.title}",
                              summary=f"{finding.key} is back within its threshold", reasons=("cleared at this health check",))
            alerts.append(_with_ack(_alert(cleared, opened.alert_id, opened.revision + 1, AlertStatus.resolved,
                                           opened.first_seen, now), opened))
            del memory.open_alerts[finding.key]
    return alerts


def find_open(memory: HealthMemory, alert_id: str) -> str | None:
    """The check key of the open health alert with this id, if any."""
    return next((key for key, opened in memory.open_alerts.items() if opened.alert_id == alert_id), None)


def operator_action(memory: HealthMemory, alert_id: str, action: str, who: str, note: str | None, now: datetime) -> Alert:
    """``alerts ack|resolve`` on an open health alert; updates ``memory`` (the caller saves it and publishes the event).

    ``ack``: an update (next revision) that carries who, when and the note, as every later event of the alert
    does. ``resolve``: the resolution; if the check still fires, the next health run opens a new alert."""
    key = find_open(memory, alert_id)
    if key is None:
        raise ValueError(f"no open health alert {alert_id!r}")
    opened = memory.open_alerts[key]
    finding = Finding(key, True, Priority(opened.priority), opened.title, opened.summary, tuple(opened.reasons), opened.count)
    opened.revision += 1
    if action == "ack":
        opened.acknowledged_by, opened.acknowledged_at, opened.ack_note = who, now, note
        return _with_ack(_alert(finding, opened.alert_id, opened.revision, AlertStatus.update, opened.first_seen, now), opened)
    if action == "resolve":
        why = f"人工解决 ({who})" + (f": {note}" if note else "")
        resolved = Finding(key, False, finding.priority, f"已解决: {opened.title}", why, (why, *opened.reasons), opened.count)
        del memory.open_alerts[key]
        return _with_ack(_alert(resolved, opened.alert_id, opened.revision, AlertStatus.resolved, opened.first_seen, now), opened)
    raise ValueError(f"unknown action {action!r}")


def _with_ack(alert: Alert, opened: OpenHealthAlert) -> Alert:
    """The alert event with the acknowledgement fields and its first reason line (as the alerter's carry them)."""
    if not opened.acknowledged_by:
        return alert
    from consumers.alerter.display import ack_text

    line = ack_text(opened.acknowledged_by, opened.acknowledged_at, opened.ack_note)
    return alert.model_copy(update={"acknowledged_by": opened.acknowledged_by, "acknowledged_at": opened.acknowledged_at,
                                    "ack_note": opened.ack_note, "reasons": [line, *alert.reasons]})


def _alert(finding: Finding, alert_id: str, revision: int, status: AlertStatus, first_seen: datetime, now: datetime) -> Alert:
    return Alert(
        alert_id=alert_id,
        revision=revision,
        priority=finding.priority,
        kind=AlertKind.health,
        key=finding.key,
        status=status,
        title=finding.title,
        summary=finding.summary,
        reasons=list(finding.reasons),
        count=finding.count,
        total_count=finding.count,
        observed=finding.observed,
        baseline=finding.baseline,
        first_seen=first_seen,
        last_seen=now,
        emitted_at=now,
    )
