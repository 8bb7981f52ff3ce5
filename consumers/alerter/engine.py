"""The alert engine: one enriched event in, the alert events it causes out. Pure: no Kafka, no DB.

Order per event: score the message (rules → P1–P4), count it in its series,
evaluate the touched series and every open spike/sentiment alert at the
stream's event-time watermark, and let the alert book decide what to publish.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from consumers.alerter.priority import Assessment, assess, is_vip
from consumers.alerter.rules import TermMatcher
from consumers.alerter.spikes import ALL_SERIES, DIMENSION_RANK, Detector, DetectorConfig, Signal, dimension, series_label
from consumers.alerter.suppression import AlertBook, Match, SuppressionPolicy
from topics.schemas import ISSUE_TYPE_ZH, Alert, AlertKind, AlertSample, EnrichedFeedback, IssueType, Priority
from topics.settings import AlertSettings

log = logging.getLogger(__name__)

CHANNEL_ZH = {"email": "邮件", "social": "社交媒体", "app": "应用评价"}
CATEGORY_TITLE = {"safety": "人身安全风险", "legal": "法律纠纷风险", "media": "媒体曝光风险", "vip": "VIP 客户强烈不满",
                  "social_reach": "高传播负面舆情", "negative": "负面反馈"}


ThemeLabels = Callable[[str], "str | None"]


def series_zh(series: str, theme_label: ThemeLabels | None = None) -> str:
    dim, label = dimension(series), series_label(series)
    if dim == "issue_type":
        return ISSUE_TYPE_ZH[IssueType(label)]
    if dim == "channel":
        return f"{CHANNEL_ZH.get(label, label)}渠道"
    if dim == "theme":
        name = theme_label(label) if theme_label is not None else None
        return f"主题「{name}」" if name else f"主题 {label}"
    return "全部反馈"


@dataclass(frozen=True)
class EngineConfig:
    """The engine's view of ``AlertSettings`` (which holds every default)."""

    message_min_priority: Priority
    quote_chars: int
    # Event times further ahead of the clock than this are taken as "now + skew": one event
    # stamped years ahead by a wrong device clock must not push the watermark past every window.
    max_future_skew: timedelta
    # Severity of a spike: P1 from this ratio over baseline and this count in the window (and negative).
    p1_min_ratio: float = 5.0
    p1_min_count: int = 15

    @classmethod
    def from_settings(cls, alerts: AlertSettings) -> EngineConfig:
        return cls(Priority(alerts.message_alert_min_priority), alerts.quote_chars, timedelta(minutes=alerts.max_future_skew_min),
                   alerts.p1_min_ratio, alerts.p1_min_count)


def clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


class AlertEngine:
    def __init__(self, matcher: TermMatcher, detector: Detector, book: AlertBook, config: EngineConfig,
                 theme_label: ThemeLabels | None = None):
        self.matcher = matcher
        self.detector = detector
        self.book = book
        self.config = config
        # Theme id -> its human label (the store's themes table), for titles; None: the id is shown.
        self.theme_label = theme_label

    @classmethod
    def build(cls, matcher: TermMatcher, alerts: AlertSettings, clock: Callable[[], datetime]) -> AlertEngine:
        return cls(
            matcher,
            Detector(DetectorConfig.from_settings(alerts)),
            AlertBook(SuppressionPolicy.from_settings(alerts), clock),
            EngineConfig.from_settings(alerts),
        )

    # --- one event ------------------------------------------------------------------

    def process(self, event: EnrichedFeedback) -> list[Alert]:
        latest = self.book.clock() + self.config.max_future_skew
        if event.received_at > latest:
            log.warning("event %s is stamped %s, ahead of the clock; counted at %s", event.event_id, event.received_at, latest)
            event = event.model_copy(update={"received_at": latest})
        assessment = assess(event, self.matcher)
        volume, sentiment = self.detector.observe(event, vip=is_vip(event, self.matcher.rules))
        now = self.detector.watermark
        sample = AlertSample(
            event_id=event.event_id,
            quote=clip(event.text, self.config.quote_chars),
            channel=event.channel,
            received_at=event.received_at,
            customer_tier=event.customer.tier,
        )
        alerts: list[Alert] = []
        # Message alerts quiet for a cool-down close first, so this message may open a fresh one.
        alerts.extend(self.book.expire(AlertKind.message, now))
        message_alert = self._message(event, assessment, sample, volume)
        if message_alert is not None:
            alerts.append(message_alert)
        alerts.extend(self._series(volume, sentiment, now, sample, event))
        return alerts

    def _message(self, event: EnrichedFeedback, assessment: Assessment, sample: AlertSample,
                 volume: list[str] | None = None) -> Alert | None:
        at = event.received_at.astimezone(timezone.utc)
        if event.duplicate_of:
            # A duplicate counts for volume and adds to its original's alert, never a second alert.
            state = self.book.find_by_event(AlertKind.message, event.duplicate_of)
            if state is None:
                return None
            return self.book.match(Match(
                AlertKind.message, state.key, at, state.priority, state.title, state.summary,
                [f"重复反馈: {event.event_id} ≈ {event.duplicate_of}"], 1, sample=sample,
            ))
        if assessment.priority.rank > self.config.message_min_priority.rank:
            return None
        if assessment.priority != Priority.P1 and volume:
            # A VIP's or a far-reaching post's complaint about an incident that already has its
            # alert is part of it: one page for the incident, not one per customer. Rule cases
            # (P1) always page on their own.
            incident = self._open_incident(volume)
            if incident is not None:
                self.book.add_note(incident, f"{assessment.reasons[0] if assessment.reasons else '重要客户'} "
                                             f"({event.customer.id}, 并入本事件)")
                return None
        lead = next((c for c in assessment.categories), "negative")
        tier = f"{event.customer.tier} 客户" if event.customer.tier else "客户"
        if assessment.priority == Priority.P1 and assessment.reasons:
            # A rule case keeps the rule as its title ("人身安全: 食物中毒"): the classifier's label is
            # often wrong for these (food poisoning read as account security).
            title = f"{assessment.reasons[0]} · {CHANNEL_ZH[event.channel.value]}"
        else:
            title = f"{CATEGORY_TITLE.get(lead, '负面反馈')}: {ISSUE_TYPE_ZH[event.primary_issue]} · {CHANNEL_ZH[event.channel.value]}"
        summary = f"{tier} {event.customer.id}: {clip(event.text, self.config.quote_chars)}"
        return self.book.match(Match(
            AlertKind.message, f"customer:{event.customer.id}", at, assessment.priority, title, summary,
            assessment.reasons, 1, sample=sample, issue_type=event.primary_issue.value,
            channel=event.channel.value, theme_id=event.theme_id,
        ))

    def _series(self, volume: list[str], sentiment: list[str], now: datetime, sample: AlertSample, event: EnrichedFeedback) -> list[Alert]:
        # Open alerts are judged on one window (the 15-minute one); any window may open one.
        shortest = self.detector.config.open_window_min
        signals: list[Signal] = []
        for series in volume:
            state = self.book.get(AlertKind.spike, series)
            if state is not None and state.open:
                signals.append(self.detector.volume(series, now, [shortest], since=self._incident_start(state, now)))
            else:
                signals.append(self.detector.volume(series, now))
        for series in sentiment:
            state = self.book.get(AlertKind.sentiment_drop, series)
            since = self._incident_start(state, now) if state is not None and state.open else None
            signals.append(self.detector.sentiment(series, now, since=since))
        touched = {(s.kind, s.series) for s in signals}
        # Open alerts on series this event is not in still need their verdict (to resolve).
        for state in self.book.open_states():
            if state.kind == AlertKind.message or (state.kind, state.key) in touched:
                continue
            if state.kind == AlertKind.spike:
                signals.append(self.detector.volume(state.key, now, [shortest], since=self._incident_start(state, now)))
            else:
                signals.append(self.detector.sentiment(state.key, now, since=self._incident_start(state, now)))
        event_series = set(volume) | set(sentiment)
        alerts: list[Alert] = []
        # Narrow series first, so a broad one can fold into the alert that explains it.
        for signal in sorted(signals, key=lambda s: (DIMENSION_RANK[dimension(s.series)], s.kind != AlertKind.spike)):
            state = self.book.get(signal.kind, signal.series)
            is_open = state is not None and state.open
            if signal.firing and not is_open and signal.kind == AlertKind.spike and signal.window_min > shortest:
                # A long window alone (e.g. the hour after a spike ended) does not open an alert:
                # the latest short window must be above baseline too.
                if self.detector.volume(signal.series, now, [shortest]).calm:
                    continue
            if signal.firing:
                if not is_open:
                    host = self._explaining_alert(signal, now)
                    if host is not None:
                        self.book.add_related(host, signal.series, f"同时: {self._signal_reason(signal)}")
                        continue
                in_event = signal.series in event_series
                alert = self.book.match(self._signal_match(signal, now, sample if in_event else None, event))
                if alert is not None:
                    alerts.append(alert)
            elif is_open and signal.calm:
                alert = self.book.calm(signal.kind, signal.series, now, {
                    "count": signal.count, "observed": signal.observed, "baseline": signal.baseline,
                    "window_minutes": signal.window_min, "p_value": signal.p_value,
                    "summary": f"回落中: {self._signal_reason(signal)}",
                    "resolved_summary": f"已回落: {self._signal_reason(signal)}",
                })
                if alert is not None:
                    alerts.append(alert)
            elif is_open:
                self.book.agitated(signal.kind, signal.series)
        return alerts

    def _open_incident(self, volume: list[str]):
        """The open spike alert whose theme or issue-type series (its key or one folded into it) this
        message counts in; a channel alone says too little (a VIP's parcel complaint on the channel of
        a login outage is not part of it)."""
        specific = {series for series in volume if dimension(series) in ("theme", "issue_type")}
        for state in self.book.open_states(AlertKind.spike):
            if specific & {state.key, *state.related}:
                return state
        return None

    def _incident_start(self, state, now: datetime) -> datetime | None:
        """Judge an open spike or drop against the baseline before it began, for at most one baseline
        length: a level that has held that long has become the new normal and resolves."""
        if now - state.first_seen < timedelta(minutes=self.detector.config.baseline_min):
            return state.first_seen
        return None

    def _explaining_alert(self, signal: Signal, now: datetime):
        """An open alert that explains ``signal``: the same incident. A signal is part of an open spike
        when it is one of the series already folded into it, when it would not fire without the events
        it shares with the alert's series (its key or any series folded into it), or when at least half
        of its window's messages are shared with one of them."""
        for state in self.book.open_states():
            if state.kind == AlertKind.message or state.key == signal.series:
                continue
            members = [state.key, *state.related]
            if signal.series in members and state.kind == AlertKind.spike:
                return state
            for member in members:
                if member == signal.series:
                    continue
                if signal.kind == AlertKind.spike:
                    if state.kind != AlertKind.spike:
                        break
                    residual = self.detector.residual(signal, member, now)
                    if not residual.firing or signal.count - residual.count >= 0.5 * signal.count:
                        return state
                elif member != ALL_SERIES:
                    # A drop that vanishes without the events of an incident's series is part of that incident.
                    if not self.detector.sentiment(signal.series, now, without=member).firing:
                        return state
                elif not self.detector.sentiment(ALL_SERIES, now, without=signal.series).firing:
                    # Everything is part of ``all``; a drop of all feedback that vanishes without this series'
                    # events was this series' drop, seen first in the total: the same incident.
                    return state
        return None

    def _signal_reason(self, signal: Signal) -> str:
        if signal.kind == AlertKind.spike:
            ratio = signal.count / signal.baseline if signal.baseline else float("inf")
            p = f", p={signal.p_value:.1e}" if signal.p_value is not None else ""
            if signal.focus is not None:
                p += f", 集中于{series_zh(signal.focus[0])} {signal.focus[1]} 条"
            # Shown as variance / mean of the window's count (1 for a Poisson series).
            phi = 1 + signal.dispersion * signal.baseline
            if phi >= 1.05:
                p += f", 离散度 φ={phi:.1f}"
            return (f"{series_zh(signal.series, self.theme_label)} {signal.window_min} 分钟 {signal.count} 条, 基线预期 {signal.baseline:.1f} 条"
                    f" ({ratio:.1f} 倍{p})")
        z = f", z={signal.z:.1f}" if signal.z is not None else ""
        return (f"{series_zh(signal.series, self.theme_label)} 近 {signal.window_min} 分钟平均情感 {signal.observed:.2f}, "
                f"基线 {signal.baseline:.2f} ({signal.count} 条{z})")

    def _severity(self, signal: Signal) -> tuple[Priority, str]:
        """Priority of a series alert from its impact: magnitude over baseline, volume, negative
        sentiment, share of VIP customers. P1 only for a negative outage ≥ p1_min_ratio × baseline with
        ≥ p1_min_count messages in the window; P3 for a minor drift (not negative, no VIPs)."""
        cfg = self.config
        if signal.kind == AlertKind.sentiment_drop:
            if signal.count >= 20 and signal.observed <= -0.5:
                return Priority.P2, f"影响: {signal.count} 条, 平均情感 {signal.observed:.2f}"
            return Priority.P3, f"影响: {signal.count} 条, 平均情感 {signal.observed:.2f}"
        ratio = signal.count / signal.baseline if signal.baseline else float("inf")
        negative = signal.mean_score <= -0.2
        impact = f"影响: {ratio:.1f} 倍基线, {signal.count} 条, 平均情感 {signal.mean_score:.2f}, VIP 占比 {signal.vip_share:.0%}"
        if negative and ratio >= cfg.p1_min_ratio and signal.count >= cfg.p1_min_count:
            return Priority.P1, impact
        if negative or signal.vip_share >= 0.2 or ratio >= cfg.p1_min_ratio:
            return Priority.P2, impact
        return Priority.P3, impact

    def _signal_match(self, signal: Signal, now: datetime, sample: AlertSample | None, event: EnrichedFeedback) -> Match:
        dim, label = dimension(signal.series), series_label(signal.series)
        if signal.kind == AlertKind.spike:
            title = f"{series_zh(signal.series, self.theme_label)}反馈量激增"
        else:
            title = f"{series_zh(signal.series, self.theme_label)}情感骤降"
        reason = self._signal_reason(signal)
        priority, why = self._severity(signal)
        return Match(
            signal.kind, signal.series, now, priority, title, reason, [reason, why], signal.count,
            baseline=signal.baseline, observed=signal.observed, window_minutes=signal.window_min,
            p_value=signal.p_value, sample=sample, added=1 if sample is not None else 0,
            issue_type=label if dim == "issue_type" else (event.primary_issue.value if sample else None),
            channel=label if dim == "channel" else None,
            theme_id=label if dim == "theme" else None,
        )
