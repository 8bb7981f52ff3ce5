"""Issue 16: new themes never spike on their own, one incident is one alert, severity follows impact,
titles say what happened (the rule, the theme's label)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from consumers.alerter.engine import AlertEngine
from consumers.alerter.rules import TermMatcher
from pipelines.bench.alert_quality import run_engine, spike_report, steady_report
from pipelines.bench.alert_streams import SpikeSpec, StreamSpec, generate
from tests.alerts.helpers import NOW, T0, enriched, minutes
from topics.schemas import AlertKind, AlertStatus, Channel, IssueType, Priority
from topics.settings import AlertSettings


def test_new_themes_during_steady_traffic_raise_no_spike(matcher: TermMatcher) -> None:
    # Every issue type's themes are replaced by new ids every 2 hours: each new theme starts with
    # ordinary traffic, which against an absolute floor of 1/h read as a spike.
    alerts = []
    for seed in range(2):
        report = steady_report(StreamSpec(T0, timedelta(hours=36), seed=40 + seed, theme_turnover=timedelta(hours=2)),
                               AlertSettings(), matcher)
        alerts += [k for k in report.alerted_keys if k.startswith("theme:")]
    assert alerts == []


def test_a_new_theme_that_outgrows_its_whole_issue_type_is_an_incident(matcher: TermMatcher) -> None:
    spec = StreamSpec(T0, timedelta(hours=9), seed=3, spike=SpikeSpec(
        IssueType.technical, timedelta(hours=6), timedelta(minutes=20), 240.0, theme_id="t-new"))
    report, _ = spike_report(spec, AlertSettings(), matcher)
    assert report.detected and report.series_alert_ids == 1 and report.delay_s <= 5 * 60


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_multi_signal_incident_is_one_alert_listing_every_signal(matcher: TermMatcher, seed: int) -> None:
    # A login outage: mostly social, a third classified as account security, in a theme born at onset.
    spec = StreamSpec(T0, timedelta(hours=9), seed=60 + seed, spike=SpikeSpec(
        IssueType.technical, timedelta(hours=6), timedelta(minutes=20), 450.0, channel=Channel.social,
        channel_share=0.8, other_issue=IssueType.account_privacy, other_issue_share=0.3, score=-0.7, theme_id="t-login"))
    report, emitted = spike_report(spec, AlertSettings(), matcher)
    assert report.detected and report.series_alert_ids == 1, [
        (e.alert.key, e.alert.status.value) for e in emitted if e.alert.kind != AlertKind.message]
    assert report.delay_s <= 5 * 60
    # Its signals: the first series plus the others folded in as reasons.
    assert len(report.signals) >= 3
    assert report.statuses[-1] == "resolved"
    # A 7x-and-more negative outage of this volume is P1.
    assert report.max_priority == "P1"


def test_severity_follows_impact(matcher: TermMatcher) -> None:
    engine = AlertEngine.build(matcher, AlertSettings(), lambda: NOW)
    from consumers.alerter.spikes import Signal

    def signal(count: int, baseline: float, score: float, vip: float = 0.0) -> Signal:
        return Signal(AlertKind.spike, "issue_type:technical", True, False, 15, count, baseline, count, 1e-9,
                      vip_share=vip, mean_score=score)

    assert engine._severity(signal(40, 4.0, -0.6))[0] == Priority.P1  # 10x, negative, volume
    assert engine._severity(signal(12, 4.0, -0.6))[0] == Priority.P2  # 3x negative: not an outage
    assert engine._severity(signal(10, 1.0, -0.6))[0] == Priority.P2  # 10x but only 10 messages
    assert engine._severity(signal(40, 4.0, 0.5))[0] == Priority.P2  # 10x surge of positive feedback
    assert engine._severity(signal(13, 4.0, 0.1))[0] == Priority.P3  # minor drift, not negative
    assert engine._severity(signal(13, 4.0, 0.1, vip=0.3))[0] == Priority.P2  # ... unless VIPs are hit


def test_steady_streams_never_page_p1(matcher: TermMatcher) -> None:
    report = steady_report(StreamSpec(T0, timedelta(hours=48), seed=9, burstiness=0.3), AlertSettings(), matcher)
    assert report.priorities.get("P1", 0) == 0


@pytest.mark.parametrize("burstiness", [0.0, 0.3])
def test_the_pooled_burstiness_finds_the_streams_own(burstiness: float) -> None:
    # Hourly Gamma rate factors of variance b per issue type: the pooled, remembered estimate over a day
    # lands near b (six hours of one series alone are often six calm hours), and near 0 for Poisson traffic.
    from consumers.alerter.spikes import Detector, DetectorConfig

    detector = Detector(DetectorConfig.from_settings(AlertSettings()))
    for event in generate(StreamSpec(T0, timedelta(hours=30), seed=5, burstiness=burstiness)):
        detector.observe(event)
    end = detector.bucket_of(detector.watermark)
    estimate, weight = detector._pooled_dispersion("issue_type", end - 15, 360)
    assert weight > 200
    assert (0.15 <= estimate <= 0.5) if burstiness else estimate <= 0.08, estimate


def test_rule_cases_keep_their_rule_as_title(matcher: TermMatcher) -> None:
    engine = AlertEngine.build(matcher, AlertSettings(), lambda: NOW)
    # The classifier calls it account security; the title says what the rule found.
    alerts = engine.process(enriched("吃了你们的外卖全家食物中毒住院了", issue=IssueType.account_privacy, score=-0.9))
    assert alerts and alerts[0].priority == Priority.P1
    assert alerts[0].title.startswith("人身安全: ") and "食物中毒" in alerts[0].title
    assert "账户安全" not in alerts[0].title


def test_theme_titles_carry_the_theme_label(matcher: TermMatcher) -> None:
    engine = AlertEngine.build(matcher, AlertSettings(), lambda: NOW)
    engine.theme_label = {"t-spike": "充电器发烫跳闸"}.get
    spec = StreamSpec(T0, timedelta(hours=8), seed=5, spike=SpikeSpec(IssueType.product_quality, timedelta(hours=6),
                                                                     timedelta(minutes=30), 450.0))
    texts = [(e.alert.title, " ".join(e.alert.reasons)) for e in run_engine(engine, generate(spec)) if e.alert.kind == AlertKind.spike]
    assert texts
    assert any("主题「充电器发烫跳闸」" in title + reasons for title, reasons in texts)
    assert not any("主题 t-spike" in title + reasons for title, reasons in texts)


def test_a_calm_update_says_what_its_counts_say(matcher: TermMatcher) -> None:
    spec = StreamSpec(T0, timedelta(hours=9), seed=8, spike=SpikeSpec(IssueType.product_quality, timedelta(hours=6),
                                                                     timedelta(minutes=30), 240.0))
    engine = AlertEngine.build(matcher, AlertSettings(), lambda: NOW)
    for e in run_engine(engine, generate(spec)):
        a = e.alert
        if a.kind == AlertKind.spike and a.status != AlertStatus.resolved:
            assert f" {a.count} 条" in a.summary, (a.count, a.summary)


def test_cold_start_incident_in_first_30_minutes_several_seeds(matcher: TermMatcher) -> None:
    delays = []
    for seed in range(4):
        spec = StreamSpec(T0, timedelta(hours=2), seed=80 + seed,
                          spike=SpikeSpec(IssueType.technical, minutes(15), minutes(20), 450.0))
        report, _ = spike_report(spec, AlertSettings(), matcher)
        assert report.detected and report.series_alert_ids == 1
        delays.append(report.delay_s)
    assert max(delays) <= 5 * 60


def test_vip_complaints_about_an_open_incident_fold_into_it(matcher: TermMatcher) -> None:
    # A login outage where 15 % of the customers are VIPs: one page for the incident, not one per VIP.
    spec = StreamSpec(T0, timedelta(hours=8), seed=61, vip_share=0.15, spike=SpikeSpec(
        IssueType.technical, timedelta(hours=6), timedelta(minutes=20), 450.0, channel=Channel.social, score=-0.8,
        theme_id="t-login"))
    engine = AlertEngine.build(matcher, AlertSettings(), lambda: NOW)
    emitted = run_engine(engine, generate(spec))
    onset = T0 + spec.spike.onset
    incident = next(e.alert for e in emitted if e.alert.kind == AlertKind.spike and e.alert.status == AlertStatus.open)
    opened_at = next(e.event.received_at for e in emitted if e.alert.alert_id == incident.alert_id)
    spike_vips = [e for e in emitted if e.alert.kind == AlertKind.message and e.alert.status == AlertStatus.open
                  and e.event.event_id.startswith("spike-") and e.event.received_at > opened_at]
    assert spike_vips == []
    later = [e.alert for e in emitted if e.alert.alert_id == incident.alert_id][-2]
    assert any("并入本事件" in r for r in later.reasons)
    # A rule case during the incident still pages on its own.
    rule = engine.process(enriched("吃了外卖食物中毒住院了", event_id="r1", customer_id="c-r", score=-0.9,
                                   at=onset + minutes(10), issue=IssueType.technical, channel=Channel.social))
    assert any(a.kind == AlertKind.message and a.priority == Priority.P1 for a in rule)


def test_an_unrelated_vip_complaint_on_the_incidents_channel_still_pages(matcher: TermMatcher) -> None:
    spec = StreamSpec(T0, timedelta(hours=7), seed=62, spike=SpikeSpec(
        IssueType.technical, timedelta(hours=6), timedelta(minutes=20), 450.0, channel=Channel.social, score=-0.8,
        theme_id="t-login"))
    engine = AlertEngine.build(matcher, AlertSettings(), lambda: NOW)
    run_engine(engine, [e for e in generate(spec) if e.received_at < T0 + timedelta(hours=6, minutes=10)])
    assert engine.book.open_states(AlertKind.spike)
    out = engine.process(enriched("快递丢了，客服也不管，太失望了", event_id="v1", customer_id="c-vip", tier="vip",
                                  score=-0.9, issue=IssueType.logistics, channel=Channel.social,
                                  at=T0 + timedelta(hours=6, minutes=10)))
    assert [(a.kind, a.priority) for a in out if a.kind == AlertKind.message] == [(AlertKind.message, Priority.P2)]


def test_a_drop_seen_first_in_all_feedback_then_in_its_channel_is_one_alert(matcher: TermMatcher) -> None:
    # The app channel's sentiment falls to -0.95 for an hour; on this stream the total crosses first, the channel
    # three minutes later. All feedback would not drop without the channel's messages: the same incident.
    from topics.schemas import Sentiment, SentimentLabel

    onset = T0 + timedelta(hours=5)
    events = []
    for event in generate(StreamSpec(T0, timedelta(hours=8), seed=904)):
        if event.channel == Channel.app and onset <= event.received_at < onset + timedelta(hours=1):
            event = event.model_copy(update={"sentiment": Sentiment(label=SentimentLabel.negative, score=-0.95)})
        events.append(event)
    engine = AlertEngine.build(matcher, AlertSettings(), lambda: NOW)
    series = [e.alert for e in run_engine(engine, events) if e.alert.kind != AlertKind.message]
    assert {a.alert_id for a in series} and len({a.alert_id for a in series}) == 1
    assert series[0].kind == AlertKind.sentiment_drop and series[0].key == "all:*"
    assert any(r.startswith("同时: 应用评价渠道") for a in series for r in a.reasons)


def test_a_sentiment_mean_that_swings_between_windows_needs_a_larger_drop() -> None:
    # Real traffic's mix of praise and complaints changes hour by hour, so a channel's window mean swings far
    # more than its messages' spread alone says: the baseline's windows show it, and the drop must exceed it.
    from consumers.alerter.spikes import Detector, DetectorConfig

    def run(swinging: bool) -> bool:
        detector = Detector(DetectorConfig.from_settings(AlertSettings()))
        for i in range(7 * 60):  # one message a minute; the last 30 minutes average -0.55
            chunk = i // 30
            if i >= 6 * 60 + 30:
                score = -0.55
            elif swinging:
                score = 0.6 if chunk % 2 else -0.5  # mostly praise, then mostly complaints, half-hour by half-hour
            else:
                score = 0.6 if i % 2 else -0.5  # the same messages, well mixed
            detector.count(T0 + minutes(i), None, "logistics", "app", score)
        return detector.sentiment("channel:app", T0 + minutes(7 * 60 - 1)).firing

    assert run(swinging=False) and not run(swinging=True)


@pytest.mark.parametrize("issue, fires", [("praise", False), ("logistics", True)])
def test_a_theme_of_praise_never_spikes_however_old(issue: str, fires: bool) -> None:
    # spike_ignore_issue_types covers the themes of those issue types too, not only while they are young.
    from consumers.alerter.spikes import Detector, DetectorConfig

    detector = Detector(DetectorConfig.from_settings(AlertSettings()))
    for i in range(0, 6 * 60, 20):  # six hours at 3/h
        detector.count(T0 + minutes(i), "t-1", issue, "app", 0.8)
    for i in range(30):  # then 30 in 15 minutes
        detector.count(T0 + minutes(6 * 60 + i / 2), "t-1", issue, "app", 0.8)
    assert detector.volume("theme:t-1", T0 + minutes(6 * 60 + 15)).firing is fires
