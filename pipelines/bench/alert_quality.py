"""Detection quality on synthetic streams: delay after a known onset, false positives on steady streams.

Used by the tests (with thresholds) and by ``feedback-miner bench alerts``
(which writes the figures to benchmarks/alerts.json).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import timedelta

from consumers.alerter.engine import AlertEngine
from consumers.alerter.rules import TermMatcher
from consumers.alerter.spikes import event_series
from pipelines.bench.alert_streams import StreamSpec, generate
from topics.schemas import Alert, AlertKind, AlertStatus, EnrichedFeedback
from topics.settings import AlertSettings

FIVE_MINUTES = timedelta(minutes=5)


@dataclass
class Emitted:
    index: int  # position of the triggering event in the stream
    event: EnrichedFeedback
    alert: Alert


def run_engine(engine: AlertEngine, events: list[EnrichedFeedback]) -> list[Emitted]:
    """Feed a stream through the engine in order; every alert with the event that caused it."""
    out = []
    for index, event in enumerate(events):
        for alert in engine.process(event):
            out.append(Emitted(index, event, alert))
    return out


@dataclass
class SpikeReport:
    spike_alert_ids: int
    series_alert_ids: int
    detected: bool
    detected_key: str | None = None
    delay_s: float | None = None
    # Spike events (the injected ones) seen up to and including the one that raised the alert.
    delay_spike_events: int | None = None
    delay_all_events: int | None = None
    updates: int = 0
    resolved_after_end_s: float | None = None
    statuses: list[str] = field(default_factory=list)
    # Priority when opened and the highest it reached; the signals folded in (channel, issue type, theme).
    priority: str | None = None
    max_priority: str | None = None
    signals: list[str] = field(default_factory=list)
    # Messages of the incident's issue type (injected or not) in its first five minutes: a detector that
    # needs ``spike_min_count`` messages cannot alert within five minutes with fewer.
    first_5_min_messages: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def spike_report(spec: StreamSpec, settings: AlertSettings, matcher: TermMatcher, clock=None) -> tuple[SpikeReport, list[Emitted]]:
    assert spec.spike is not None
    events = generate(spec)
    engine = AlertEngine.build(matcher, settings, clock or (lambda: spec.start + spec.duration))
    emitted = run_engine(engine, events)
    onset = spec.start + spec.spike.onset
    end = onset + spec.spike.duration
    series = [e for e in emitted if e.alert.kind != AlertKind.message]
    spikes = [e for e in series if e.alert.kind == AlertKind.spike]
    report = SpikeReport(
        spike_alert_ids=len({e.alert.alert_id for e in spikes}),
        series_alert_ids=len({e.alert.alert_id for e in series}),
        detected=False,
    )
    report.first_5_min_messages = sum(1 for ev in events if ev.primary_issue == spec.spike.issue_type
                                      and onset <= ev.received_at <= onset + FIVE_MINUTES)
    first = next((e for e in spikes if e.alert.status == AlertStatus.open and e.event.received_at >= onset), None)
    if first is None:
        return report, emitted
    report.detected = True
    report.detected_key = first.alert.key
    report.delay_s = (first.event.received_at - onset).total_seconds()
    onset_index = next(i for i, ev in enumerate(events) if ev.received_at >= onset)
    report.delay_all_events = first.index - onset_index + 1
    report.delay_spike_events = sum(1 for ev in events[onset_index : first.index + 1] if ev.event_id.startswith("spike-"))
    mine = [e for e in spikes if e.alert.alert_id == first.alert.alert_id]
    report.statuses = [e.alert.status.value for e in mine]
    report.updates = sum(1 for e in mine if e.alert.status == AlertStatus.update)
    report.priority = first.alert.priority.value
    report.max_priority = min(e.alert.priority.value for e in mine)
    folded = {m.group(1) for e in mine for r in e.alert.reasons if (m := re.match(r"同时: (.*?) (近 )?\d+ 分钟", r))}
    report.signals = [first.alert.key, *sorted(folded)]
    resolved = next((e for e in mine if e.alert.status == AlertStatus.resolved), None)
    if resolved is not None:
        report.resolved_after_end_s = (resolved.event.received_at - end).total_seconds()
    return report, emitted


@dataclass
class SteadyReport:
    hours: float
    events: int
    volume_series: int
    windows: int  # volume series × windows per series (non-overlapping, shortest window)
    spike_alerts: int
    sentiment_alerts: int
    false_positive_rate: float  # spike alerts per evaluated window
    false_alerts_per_day: float
    alerted_keys: list[str] = field(default_factory=list)
    # Series alerts by priority (P1 must stay 0 on steady traffic).
    priorities: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def steady_report(spec: StreamSpec, settings: AlertSettings, matcher: TermMatcher) -> SteadyReport:
    assert spec.spike is None
    events = generate(spec)
    engine = AlertEngine.build(matcher, settings, lambda: spec.start + spec.duration)
    emitted = run_engine(engine, events)
    opened = [e.alert for e in emitted if e.alert.status == AlertStatus.open and e.alert.kind != AlertKind.message]
    ids = Counter((a.kind, a.alert_id) for a in opened)
    spikes = sum(1 for kind, _ in ids if kind == AlertKind.spike)
    sentiment = sum(1 for kind, _ in ids if kind == AlertKind.sentiment_drop)
    series = {s for ev in events for s in event_series(ev, engine.detector.config)[0]}
    hours = spec.duration.total_seconds() / 3600
    # Windows after the warm-up, when verdicts are possible.
    judged_hours = max(0.0, hours - settings.min_history_min / 60)
    windows = int(len(series) * judged_hours * 60 / min(settings.windows_min))
    return SteadyReport(
        hours=hours, events=len(events), volume_series=len(series), windows=windows,
        spike_alerts=spikes, sentiment_alerts=sentiment,
        false_positive_rate=spikes / windows if windows else 0.0,
        false_alerts_per_day=(spikes + sentiment) / (judged_hours / 24) if judged_hours else 0.0,
        alerted_keys=sorted({a.key for a in opened}),
        priorities=dict(Counter(a.priority.value for a in opened)),
    )
