"""Suppression: one open alert per (kind, key), updates instead of new alerts, resolution, cool-down."""

from __future__ import annotations

from datetime import timedelta


from consumers.alerter.engine import AlertEngine
from consumers.alerter.rules import TermMatcher
from consumers.alerter.suppression import AlertBook, Match, SuppressionPolicy
from tests.alerts.helpers import NOW, T0, enriched, minutes
from topics.schemas import AlertKind, AlertStatus, Priority
from topics.settings import AlertSettings


def _book() -> AlertBook:
    ids = iter(f"a{i}" for i in range(100))
    policy = SuppressionPolicy(cooldown=minutes(60), update_interval=minutes(5), resolve_quiet=minutes(15), max_samples=5)
    return AlertBook(policy, clock=lambda: T0, new_id=lambda: next(ids))


def _spike(at_min: float, count: int) -> Match:
    return Match(AlertKind.spike, "issue_type:logistics", T0 + minutes(at_min), Priority.P2, "物流配送反馈量激增",
                 f"{count} 条", [f"{count} 条"], count, baseline=2.0, observed=count, window_minutes=15)


def test_open_then_throttled_updates_then_resolution() -> None:
    book = _book()
    opened = book.match(_spike(0, 10))
    assert opened.status == AlertStatus.open and opened.alert_id == "a0" and opened.revision == 0
    assert book.match(_spike(2, 11)) is None  # within the update interval: folded in silently
    update = book.match(_spike(6, 14))
    assert update.status == AlertStatus.update and update.alert_id == "a0" and update.count == 14 and update.revision == 1
    assert update.total_count == 12  # the 10 that opened it, then one new message per match
    assert book.calm(AlertKind.spike, "issue_type:logistics", T0 + minutes(10)) is None
    assert book.calm(AlertKind.spike, "issue_type:logistics", T0 + minutes(20)) is None
    resolved = book.calm(AlertKind.spike, "issue_type:logistics", T0 + minutes(25))
    assert resolved.status == AlertStatus.resolved and resolved.alert_id == "a0" and resolved.revision == 2
    assert "已回落至基线" in resolved.reasons


def test_firing_again_resets_the_quiet_period() -> None:
    book = _book()
    book.match(_spike(0, 10))
    book.calm(AlertKind.spike, "issue_type:logistics", T0 + minutes(5))
    book.match(_spike(12, 12))
    assert book.calm(AlertKind.spike, "issue_type:logistics", T0 + minutes(21)) is None  # quiet clock restarted
    assert book.calm(AlertKind.spike, "issue_type:logistics", T0 + minutes(36)).status == AlertStatus.resolved


def test_refiring_within_cooldown_reopens_the_same_alert_and_after_it_a_new_one() -> None:
    book = _book()
    book.match(_spike(0, 10))
    book.calm(AlertKind.spike, "issue_type:logistics", T0 + minutes(1))
    assert book.calm(AlertKind.spike, "issue_type:logistics", T0 + minutes(16)).status == AlertStatus.resolved
    reopened = book.match(_spike(40, 9))
    assert reopened.status == AlertStatus.open and reopened.alert_id == "a0"
    assert any("冷却期内再次触发" in r for r in reopened.reasons)
    book.calm(AlertKind.spike, "issue_type:logistics", T0 + minutes(41))
    book.calm(AlertKind.spike, "issue_type:logistics", T0 + minutes(56))
    fresh = book.match(_spike(56 + 61, 9))
    assert fresh.status == AlertStatus.open and fresh.alert_id == "a1" and fresh.revision == 0


def test_priority_escalation_publishes_at_once() -> None:
    book = _book()
    base = dict(kind=AlertKind.message, key="customer:c-1", title="t", summary="s", count=1)
    book.match(Match(at=T0, priority=Priority.P2, reasons=["VIP"], **base))
    escalated = book.match(Match(at=T0 + minutes(1), priority=Priority.P1, reasons=["人身安全: 起火"], **base))
    assert escalated.status == AlertStatus.update and escalated.priority == Priority.P1
    assert escalated.reasons == ["VIP", "人身安全: 起火"]


def _engine(matcher: TermMatcher) -> AlertEngine:
    return AlertEngine.build(matcher, AlertSettings(), clock=lambda: NOW)


def test_message_alerts_one_per_customer_within_cooldown(matcher: TermMatcher) -> None:
    engine = _engine(matcher)
    first = engine.process(enriched("充电宝起火了", event_id="m1", customer_id="c-9", score=-0.9))
    assert [(a.kind, a.status, a.priority) for a in first] == [(AlertKind.message, AlertStatus.open, Priority.P1)]
    assert first[0].key == "customer:c-9" and first[0].samples[0].event_id == "m1"
    # Same customer two minutes later: folded into the open alert (no publish before the update interval).
    assert engine.process(enriched("还冒烟了，吓死了", event_id="m2", customer_id="c-9", at=T0 + minutes(2), score=-0.9)) == []
    third = engine.process(enriched("到现在没人联系我，我要起诉", event_id="m3", customer_id="c-9", at=T0 + minutes(7), score=-0.9))
    assert [(a.status, a.alert_id, a.count) for a in third] == [(AlertStatus.update, first[0].alert_id, 3)]
    assert {s.event_id for s in third[0].samples} == {"m1", "m2", "m3"}
    # Another customer: its own alert. After the cool-down the first customer gets a new one.
    other = engine.process(enriched("孩子烫伤了", event_id="m4", customer_id="c-5", at=T0 + minutes(8), score=-0.9))
    assert other[0].status == AlertStatus.open and other[0].alert_id != first[0].alert_id
    later = engine.process(enriched("又起火了", event_id="m5", customer_id="c-9", at=T0 + minutes(7 + 61), score=-0.9))
    # The quiet alerts close with a resolution event (no longer silently), then the new one opens.
    closed = [a for a in later if a.status == AlertStatus.resolved]
    assert {a.alert_id for a in closed} == {first[0].alert_id, other[0].alert_id}
    assert all("冷却期内无新消息，自动关闭" in a.reasons for a in closed)
    assert later[-1].status == AlertStatus.open and later[-1].alert_id != first[0].alert_id


def test_duplicates_count_but_never_create_a_second_message_alert(matcher: TermMatcher) -> None:
    engine = _engine(matcher)
    original = engine.process(enriched("电热毯着火了，被子烧了个洞", event_id="o1", customer_id="c-1", score=-0.9))
    assert len(original) == 1
    # Near-duplicates from other customers (reposts): no new alert, folded into the original's.
    for n in range(4):
        out = engine.process(enriched("电热毯着火了，被子烧了个洞!!", event_id=f"d{n}", customer_id=f"c-{10 + n}",
                                      at=T0 + minutes(1 + n), score=-0.9, duplicate_of="o1"))
        assert all(a.status != AlertStatus.open for a in out)
    update = engine.process(enriched("电热毯着火了", event_id="d9", customer_id="c-20", at=T0 + minutes(6),
                                     score=-0.9, duplicate_of="o1"))
    assert [(a.status, a.alert_id, a.count) for a in update] == [(AlertStatus.update, original[0].alert_id, 6)]
    # A duplicate of a message that raised no alert raises none itself, but is counted for volume.
    before = sum(b.count for b in engine.detector.counts.buckets["v|issue_type:logistics"].values())
    assert engine.process(enriched("快递慢", event_id="d20", customer_id="c-30", at=T0 + minutes(7), duplicate_of="unknown")) == []
    after = sum(b.count for b in engine.detector.counts.buckets["v|issue_type:logistics"].values())
    assert after == before + 1


def test_p3_and_p4_messages_raise_no_message_alert_by_default(matcher: TermMatcher) -> None:
    engine = _engine(matcher)
    assert engine.process(enriched("快递慢了两天", score=-0.5)) == []
    settings = AlertSettings(message_alert_min_priority="P3")
    engine = AlertEngine.build(matcher, settings, clock=lambda: NOW)
    out = engine.process(enriched("快递慢了两天", score=-0.5))
    assert [(a.priority, a.kind) for a in out] == [(Priority.P3, AlertKind.message)]


def test_an_event_from_the_future_does_not_move_the_watermark_past_every_window(matcher: TermMatcher) -> None:
    engine = AlertEngine.build(matcher, AlertSettings(), clock=lambda: T0 + minutes(30))
    engine.process(enriched("快递慢", event_id="f0", at=T0 + minutes(20)))
    engine.process(enriched("快递慢", event_id="f1", at=T0 + timedelta(days=3 * 365)))  # a device clock years ahead
    assert engine.detector.watermark == T0 + minutes(40)  # clock + max_future_skew_min
    # Nothing counted before was pruned away.
    assert sum(b.count for b in engine.detector.counts.buckets["v|channel:app"].values()) == 2
