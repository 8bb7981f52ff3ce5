"""Suppression: one open alert per (kind, key); later matches update it; resolution.

The book holds one ``AlertState`` per (kind, key). A signal on a key with no
open alert opens one; on an open alert it is folded in and published as an
``update`` at most once per ``update_interval`` (or at once when the priority
rises); a key that fires again within ``cooldown`` after resolving re-opens the
same alert id instead of creating a new one. Times are event times.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from consumers.alerter.display import ack_text
from topics.schemas import Alert, AlertKind, AlertSample, AlertStatus, Channel, IssueType, Priority
from topics.settings import AlertSettings

EVENT_IDS_KEPT = 200


@dataclass
class AlertState:
    alert_id: str
    kind: AlertKind
    key: str
    priority: Priority
    open: bool
    title: str
    summary: str
    reasons: list[str]
    first_seen: datetime
    last_seen: datetime
    last_emitted: datetime
    revision: int = 0
    count: int = 0
    total_count: int = 0
    baseline: float | None = None
    observed: float | None = None
    window_minutes: int | None = None
    p_value: float | None = None
    samples: list[dict] = field(default_factory=list)
    # Ids of every message folded in (bounded), so a duplicate finds its original's alert.
    event_ids: list[str] = field(default_factory=list)
    issue_type: str | None = None
    channel: str | None = None
    theme_id: str | None = None
    calm_since: datetime | None = None
    resolved_at: datetime | None = None
    # Matches folded in since the last published event.
    unpublished: int = 0
    # Broader series whose signal this alert explains (folded in, no alert of their own).
    related: list[str] = field(default_factory=list)
    related_reasons: list[str] = field(default_factory=list)
    # An operator acknowledged it (``alerts ack``): who, when (processing time), note.
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    ack_note: str | None = None
    # Resolved by an operator (``alerts resolve``) rather than by the detector.
    resolved_by: str | None = None

    def to_json(self) -> dict:
        data = asdict(self)
        for name in ("first_seen", "last_seen", "last_emitted", "calm_since", "resolved_at", "acknowledged_at"):
            value = data[name]
            data[name] = value.isoformat() if value is not None else None
        data["kind"] = self.kind.value
        data["priority"] = self.priority.value
        return data

    @classmethod
    def from_json(cls, data: dict) -> AlertState:
        data = dict(data)
        for name in ("first_seen", "last_seen", "last_emitted", "calm_since", "resolved_at", "acknowledged_at"):
            if data.get(name) is not None:
                data[name] = datetime.fromisoformat(data[name])
        data["kind"] = AlertKind(data["kind"])
        data["priority"] = Priority(data["priority"])
        return cls(**data)


@dataclass(frozen=True)
class Match:
    """One signal for (kind, key): what a new or updated alert should say."""

    kind: AlertKind
    key: str
    at: datetime
    priority: Priority
    title: str
    summary: str
    reasons: list[str]
    # spike/sentiment: the window's count (replaces); message: 1 per matching message (adds).
    count: int
    baseline: float | None = None
    observed: float | None = None
    window_minutes: int | None = None
    p_value: float | None = None
    sample: AlertSample | None = None
    issue_type: str | None = None
    channel: str | None = None
    theme_id: str | None = None
    # New matching messages this match brings (a spike re-judged on another series' event brings none).
    added: int = 1


@dataclass(frozen=True)
class SuppressionPolicy:
    """The suppression view of ``AlertSettings`` (which holds every default)."""

    cooldown: timedelta
    update_interval: timedelta
    resolve_quiet: timedelta
    max_samples: int
    # Times written into texts for people (the acknowledgement line).
    timezone: str = "Asia/Shanghai"

    @classmethod
    def from_settings(cls, alerts: AlertSettings) -> SuppressionPolicy:
        return cls(
            cooldown=timedelta(minutes=alerts.cooldown_min),
            update_interval=timedelta(minutes=alerts.update_interval_min),
            resolve_quiet=timedelta(minutes=alerts.resolve_quiet_min),
            max_samples=alerts.max_samples,
            timezone=alerts.timezone,
        )


class AlertBook:
    """The alert states by (kind, key), with the keys changed since the last save."""

    def __init__(self, policy: SuppressionPolicy, clock: Callable[[], datetime], new_id: Callable[[], str] | None = None):
        self.policy = policy
        self.clock = clock
        self.new_id = new_id or (lambda: uuid.uuid4().hex)
        self.states: dict[tuple[str, str], AlertState] = {}
        self.dirty: set[tuple[str, str]] = set()

    def get(self, kind: AlertKind, key: str) -> AlertState | None:
        return self.states.get((kind.value, key))

    def open_states(self, kind: AlertKind | None = None) -> list[AlertState]:
        return [s for s in self.states.values() if s.open and (kind is None or s.kind == kind)]

    def put(self, state: AlertState) -> None:
        self.states[(state.kind.value, state.key)] = state

    def _touch(self, state: AlertState) -> None:
        self.dirty.add((state.kind.value, state.key))

    # --- transitions -----------------------------------------------------------

    def match(self, m: Match) -> Alert | None:
        """Fold a match in; returns the alert event to publish, if any."""
        state = self.get(m.kind, m.key)
        if state is None or (not state.open and not self._within_cooldown(state, m.at)):
            state = AlertState(
                alert_id=self.new_id(), kind=m.kind, key=m.key, priority=m.priority, open=True,
                title=m.title, summary=m.summary, reasons=list(m.reasons),
                first_seen=m.at, last_seen=m.at, last_emitted=m.at,
            )
            self.put(state)
            self._apply(state, m)
            if m.kind != AlertKind.message:
                state.total_count = m.count  # the messages that made the window fire
            return self._emit(state, AlertStatus.open, m.at)
        if not state.open:
            # Fired again within the cool-down: the same alert re-opens.
            state.open, state.resolved_at = True, None
            state.priority = m.priority
            self._apply(state, m, replace_text=True)
            state.reasons = [*state.reasons, "冷却期内再次触发，沿用原告警"]
            return self._emit(state, AlertStatus.open, m.at)
        escalated = m.priority.rank < state.priority.rank
        self._apply(state, m, replace_text=escalated or m.kind != AlertKind.message)
        if escalated:
            state.priority = m.priority
        state.calm_since = None
        if escalated or m.at - state.last_emitted >= self.policy.update_interval:
            return self._emit(state, AlertStatus.update, m.at)
        self._touch(state)
        return None

    def agitated(self, kind: AlertKind, key: str) -> None:
        """The key's signal is between firing and calm: the quiet period starts over."""
        state = self.get(kind, key)
        if state is not None and state.calm_since is not None:
            state.calm_since = None
            self._touch(state)

    def calm(self, kind: AlertKind, key: str, at: datetime, observed: dict | None = None) -> Alert | None:
        """The key's signal is back to baseline at ``at``; resolves after ``resolve_quiet``."""
        state = self.get(kind, key)
        if state is None or not state.open:
            return None
        observed = dict(observed or {})
        summary = observed.pop("summary", None)
        resolved_summary = observed.pop("resolved_summary", summary)
        for name, value in observed.items():
            setattr(state, name, value)
        if summary:
            # The summary always says what the counts published with it say.
            state.summary = summary
        if state.calm_since is None:
            state.calm_since = at
            self._touch(state)
        if at - state.calm_since >= self.policy.resolve_quiet:
            if resolved_summary:
                state.summary = resolved_summary
            return self.resolve(state, at, "已回落至基线")
        # Quiet time still flushes matches folded in since the last update.
        if state.unpublished and at - state.last_emitted >= self.policy.update_interval:
            return self._emit(state, AlertStatus.update, at)
        return None

    def resolve(self, state: AlertState, at: datetime, why: str, publish: bool = True) -> Alert | None:
        state.open = False
        state.resolved_at = at
        state.calm_since = None
        if not publish:
            self._touch(state)
            return None
        if why not in state.reasons:
            state.reasons = [*state.reasons, why]
        return self._emit(state, AlertStatus.resolved, at)

    def expire(self, kind: AlertKind, at: datetime) -> list[Alert]:
        """Resolve alerts of ``kind`` quiet for a cool-down (message alerts), with a resolution event."""
        out = []
        for state in self.open_states(kind):
            if at - state.last_seen >= self.policy.cooldown:
                # Closed as of its last match: the cool-down has already run out.
                out.append(self.resolve(state, state.last_seen, "冷却期内无新消息，自动关闭"))
        return [a for a in out if a is not None]

    # --- operators ---------------------------------------------------------------------

    def find_by_id(self, alert_id: str) -> AlertState | None:
        return next((s for s in self.states.values() if s.alert_id == alert_id), None)

    def acknowledge(self, state: AlertState, who: str, note: str | None) -> Alert:
        """An operator took it: published as an update carrying who, when and the note."""
        state.acknowledged_by, state.acknowledged_at, state.ack_note = who, self.clock(), note
        return self._emit(state, AlertStatus.update, state.last_emitted)

    def operator_resolve(self, state: AlertState, who: str, note: str | None) -> Alert:
        """An operator resolved it; if its signal still fires, the same id re-opens within the cool-down."""
        state.resolved_by = who
        why = f"人工解决 ({who})" + (f": {note}" if note else "")
        at = max(state.last_seen, state.last_emitted)
        return self.resolve(state, at, why)

    def prune(self, before: datetime) -> None:
        """Forget closed alerts whose cool-down ended before ``before``."""
        for key, state in list(self.states.items()):
            if not state.open and state.resolved_at is not None and state.resolved_at + self.policy.cooldown < before:
                del self.states[key]
                self.dirty.add(key)

    def find_by_event(self, kind: AlertKind, event_id: str) -> AlertState | None:
        for state in self.open_states(kind):
            if event_id in state.event_ids:
                return state
        return None

    # --- helpers ---------------------------------------------------------------------

    def _within_cooldown(self, state: AlertState, at: datetime) -> bool:
        return state.resolved_at is not None and at - state.resolved_at < self.policy.cooldown

    def _apply(self, state: AlertState, m: Match, replace_text: bool = False) -> None:
        state.last_seen = max(state.last_seen, m.at)
        state.first_seen = min(state.first_seen, m.at)
        if m.kind == AlertKind.message:
            state.count += m.count
        else:
            state.count = m.count
        state.total_count += m.added
        state.unpublished += 1
        for name in ("baseline", "observed", "window_minutes", "p_value"):
            if getattr(m, name) is not None:
                setattr(state, name, getattr(m, name))
        for name in ("issue_type", "channel", "theme_id"):
            if getattr(state, name) is None and getattr(m, name) is not None:
                setattr(state, name, getattr(m, name))
        if m.kind != AlertKind.message:
            # A series alert explains its latest statistics, not the history of them.
            state.title, state.summary, state.reasons = m.title, m.summary, list(m.reasons)
        else:
            if replace_text:
                state.title, state.summary = m.title, m.summary
            state.reasons = [*state.reasons, *(r for r in m.reasons if r not in state.reasons)][-20:]
        if m.sample is not None:
            if m.sample.event_id not in state.event_ids:
                state.event_ids = [*state.event_ids, m.sample.event_id][-EVENT_IDS_KEPT:]
            if all(s["event_id"] != m.sample.event_id for s in state.samples):
                # Keep the first samples (the onset) and the latest one.
                samples = [*state.samples, m.sample.model_dump(mode="json")]
                if len(samples) > self.policy.max_samples:
                    samples = samples[: self.policy.max_samples - 1] + samples[-1:]
                state.samples = samples
        self._touch(state)

    def add_note(self, state: AlertState, note: str) -> None:
        """A message folded into an incident (a VIP's complaint): listed with the related signals, latest kept."""
        notes = [r for r in state.related_reasons[len(state.related):] if r != note]
        state.related_reasons = [*state.related_reasons[: len(state.related)], *[*notes, note][-3:]]
        state.unpublished += 1
        self._touch(state)

    def add_related(self, state: AlertState, series: str, reason: str) -> None:
        if series in state.related:
            # The folded signal's latest statistics replace its earlier ones.
            index = state.related.index(series)
            if index < len(state.related_reasons) and state.related_reasons[index] != reason:
                state.related_reasons[index] = reason
                self._touch(state)
        elif len(state.related) < 10:
            # Signals first, in the order they were folded in; message notes (add_note) after them.
            state.related_reasons = [*state.related_reasons[: len(state.related)], reason,
                                     *state.related_reasons[len(state.related):]]
            state.related.append(series)
            self._touch(state)

    def _operator_lines(self, state: AlertState) -> list[str]:
        line = ack_text(state.acknowledged_by, state.acknowledged_at, state.ack_note, self.policy.timezone)
        return [line] if line else []

    def _emit(self, state: AlertState, status: AlertStatus, at: datetime) -> Alert:
        alert = Alert(
            alert_id=state.alert_id,
            revision=state.revision,
            priority=state.priority,
            kind=state.kind,
            key=state.key,
            status=status,
            title=state.title,
            summary=state.summary,
            reasons=[*self._operator_lines(state), *state.reasons, *state.related_reasons],
            count=state.count,
            baseline=state.baseline,
            observed=state.observed,
            window_minutes=state.window_minutes,
            p_value=state.p_value,
            total_count=state.total_count,
            samples=[AlertSample.model_validate(s) for s in state.samples],
            issue_type=IssueType(state.issue_type) if state.issue_type else None,
            channel=Channel(state.channel) if state.channel else None,
            theme_id=state.theme_id,
            first_seen=state.first_seen,
            last_seen=state.last_seen,
            acknowledged_by=state.acknowledged_by,
            acknowledged_at=state.acknowledged_at,
            ack_note=state.ack_note,
            emitted_at=self.clock(),
        )
        state.revision += 1
        state.unpublished = 0
        state.last_emitted = at
        self._touch(state)
        return alert
