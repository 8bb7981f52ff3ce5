"""The alert benchmark: detection delay and false positives on replayed streams, engine throughput.

Background traffic (``pipelines.bench.alert_streams``, 60.5 messages/h): real reviews and posts from the
shared data sets, each with the production model's issue types and sentiment (cached in var/cache), in
the model's issue-type mix over them; or (``background="synthetic"``) the written complaints in the
generator's fixed mix. Incidents are injected on top. Scenarios:
- spike: one issue type, theme and channel gets an extra Poisson stream at a known
  onset, at several strengths; we measure whether and how soon (event seconds,
  injected messages, all messages) one spike alert opens, and when it resolves;
- steady: long streams without spikes; every spike alert is a false positive,
  reported per evaluated window (volume series × 15-minute windows) and per day,
  for a plain Poisson mix, a daily cycle (±60 %), hourly bursts (Gamma rate
  factors, variance 0.3) and both;
- sentiment: one channel's sentiment falls to -0.95 for an hour; delay to the alert;
- cold start: an incident inside the first 30 minutes of a stream (no history at all);
- multi-signal: a login-failure incident on the social channel (80 %), 30 % of it classified as
  account security, strongly negative, in a theme born at onset: one alert listing every signal;
- new themes: steady traffic whose themes are replaced by new ids every 3 hours (the enricher's
  live clustering births themes): every spike alert is a false positive;
- severity: priorities of the alerts above (P1 only for negative outages ≥ 5× baseline).
"""

from __future__ import annotations

import platform
import statistics
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

from consumers.alerter.engine import AlertEngine
from consumers.alerter.rules import TermMatcher, load_rules
from pipelines.bench.alert_quality import run_engine, spike_report, steady_report
from pipelines.bench.alert_streams import (
    DEFAULT_RATES,
    RealTexts,
    SpikeSpec,
    StreamSpec,
    generate,
    load_real_texts,
)
from topics.schemas import (
    AlertKind,
    AlertStatus,
    Channel,
    IssueType,
    Sentiment,
    SentimentLabel,
)
from topics.settings import AlertSettings

START = datetime(2026, 11, 2, tzinfo=timezone.utc)
# Replays run after the streams they replay (event times ahead of the clock would be clamped).
REPLAYED_AT = START + timedelta(days=30)
SPIKE_RATES = (30.0, 60.0, 120.0)  # extra messages per hour; the issue type's base rate is 10/h
# Cold start: technical (5/h) gets an extra stream 10 minutes into a stream without history.
COLD_START_RATES = (120.0, 240.0, 450.0)
COLD_START_SEEDS_FACTOR = 6
# Multi-signal incident: extra messages per hour for 20 minutes (the issue's real one: 150 in ~20 min = 450/h).
MULTI_SIGNAL_RATES = (60.0, 150.0, 450.0)
STREAM_RATE_PER_HOUR = sum(DEFAULT_RATES.values())
REPO = Path(__file__).resolve().parents[2]


def _background(texts: RealTexts | None) -> dict:
    """StreamSpec fields of the background traffic: real texts in their mix, else the written mix."""
    if texts is None:
        return {"rates_per_hour": dict(DEFAULT_RATES)}
    return {"rates_per_hour": texts.rates(STREAM_RATE_PER_HOUR), "texts": texts}


def _base_rate(bg: dict, issue: IssueType) -> float:
    return round(bg["rates_per_hour"].get(issue, 0.0), 2)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _summarise(runs: list[dict], min_count: int, **extra) -> dict:
    detected = [r for r in runs if r["detected"]]
    # Runs whose incident brought at least spike_min_count messages of its issue type in its first five
    # minutes: only these can be alerted within five minutes (the rest are alerted with that message).
    possible = [r for r in runs if r["first_5_min_messages"] >= min_count]
    return {
        **extra,
        "runs": len(runs),
        "detected": len(detected),
        "exactly_one_alert": sum(1 for r in runs if r["detected"] and r["series_alert_ids"] == 1),
        "delay_s_median": _median([r["delay_s"] for r in detected]),
        "delay_s_max": max((r["delay_s"] for r in detected), default=None),
        "within_5_min": sum(1 for r in detected if r["delay_s"] <= 300),
        "with_min_count_in_5_min": len(possible),
        "within_5_min_of_those": sum(1 for r in possible if r["detected"] and r["delay_s"] <= 300),
        "delay_s_by_seed": {r["seed"]: r["delay_s"] for r in runs},
        "priority_opened": dict(sorted(Counter(r["priority"] for r in detected).items())),
        "priority_max": dict(sorted(Counter(r["max_priority"] for r in detected).items())),
        "signals_median": _median([len(r["signals"]) for r in detected]),
        "per_run": runs,
    }


def _spike_runs(settings: AlertSettings, matcher: TermMatcher, seeds: int, spec_for) -> list[dict]:
    """One spike report per seed, on the stream ``spec_for(seed)`` builds."""
    runs = []
    for seed in range(seeds):
        spec = spec_for(seed)
        runs.append({"seed": spec.seed, **spike_report(spec, settings, matcher)[0].as_dict()})
    return runs


def _cold_start(settings: AlertSettings, matcher: TermMatcher, seeds: int, bg: dict) -> list[dict]:
    out = []
    for rate in COLD_START_RATES:
        # Cheap (3-hour streams): more seeds than the other scenarios, so the figure is not one lucky set.
        runs = _spike_runs(settings, matcher, seeds * COLD_START_SEEDS_FACTOR, lambda seed, rate=rate: StreamSpec(
            START, timedelta(hours=3), seed=300 + seed, **bg,
            spike=SpikeSpec(IssueType.technical, timedelta(minutes=10), timedelta(minutes=20), rate)))
        out.append(_summarise(runs, settings.spike_min_count, spike_rate_per_hour=rate,
                              base_rate_per_hour=_base_rate(bg, IssueType.technical), onset_min=10))
    return out


def _multi_signal(settings: AlertSettings, matcher: TermMatcher, seeds: int, bg: dict) -> list[dict]:
    out = []
    for rate in MULTI_SIGNAL_RATES:
        runs = _spike_runs(settings, matcher, seeds, lambda seed, rate=rate: StreamSpec(START, timedelta(hours=10), seed=700 + seed, **bg, spike=SpikeSpec(
            IssueType.technical, timedelta(hours=6), timedelta(minutes=20), rate, channel=Channel.social,
            channel_share=0.8, other_issue=IssueType.account_privacy, other_issue_share=0.3, score=-0.7,
            theme_id="t-login", text="登录一直失败，验证码收不到，账号进不去")))
        out.append(_summarise(runs, settings.spike_min_count, spike_rate_per_hour=rate,
                              base_rate_per_hour=_base_rate(bg, IssueType.technical)))
    return out


def _spikes(settings: AlertSettings, matcher: TermMatcher, seeds: int, bg: dict) -> list[dict]:
    scenarios = []
    for rate in SPIKE_RATES:
        runs = _spike_runs(settings, matcher, seeds, lambda seed, rate=rate: StreamSpec(
            START, timedelta(hours=10), seed=100 + seed, **bg,
            spike=SpikeSpec(IssueType.product_quality, timedelta(hours=6), timedelta(minutes=45), rate)))
        detected = [r for r in runs if r["detected"]]
        scenarios.append({
            "spike_rate_per_hour": rate,
            "base_rate_per_hour": _base_rate(bg, IssueType.product_quality),
            "runs": len(runs),
            "detected": len(detected),
            "exactly_one_alert": sum(1 for r in runs if r["detected"] and r["series_alert_ids"] == 1),
            "delay_s_median": _median([r["delay_s"] for r in detected]),
            "delay_s_max": max((r["delay_s"] for r in detected), default=None),
            "delay_spike_events_median": _median([r["delay_spike_events"] for r in detected]),
            "delay_all_events_median": _median([r["delay_all_events"] for r in detected]),
            "resolved": sum(1 for r in detected if r["resolved_after_end_s"] is not None),
            "resolved_after_end_s_median": _median([r["resolved_after_end_s"] for r in detected if r["resolved_after_end_s"] is not None]),
            "priority_max": dict(sorted(Counter(r["max_priority"] for r in detected).items())),
            "per_run": runs,
        })
    return scenarios


STEADY_VARIANTS = {
    "poisson": {},
    "daily_cycle": {"daily_amplitude": 0.6},
    "bursty": {"burstiness": 0.3},
    "daily_cycle_and_bursty": {"daily_amplitude": 0.6, "burstiness": 0.3},
    "new_themes": {"theme_turnover": timedelta(hours=3)},
    "new_themes_daily_cycle": {"theme_turnover": timedelta(hours=3), "daily_amplitude": 0.6},
}


def _steady(settings: AlertSettings, matcher: TermMatcher, seeds: int, hours: float, variant: dict, bg: dict) -> dict:
    runs = [
        steady_report(StreamSpec(START, timedelta(hours=hours), seed=500 + seed, **variant, **bg), settings, matcher).as_dict()
        for seed in range(seeds)
    ]
    windows = sum(r["windows"] for r in runs)
    spikes = sum(r["spike_alerts"] for r in runs)
    sentiment = sum(r["sentiment_alerts"] for r in runs)
    days = sum(r["hours"] for r in runs) / 24
    priorities: Counter = Counter()
    for r in runs:
        priorities.update(r["priorities"])
    return {
        "stream": {k: (v.total_seconds() / 3600 if isinstance(v, timedelta) else v) for k, v in variant.items()},
        "runs": len(runs), "priorities": dict(sorted(priorities.items())), "hours_each": hours, "events": sum(r["events"] for r in runs),
        "windows_evaluated": windows, "spike_alerts": spikes, "sentiment_alerts": sentiment,
        "false_positive_rate_per_window": spikes / windows if windows else 0.0,
        "false_alerts_per_day": (spikes + sentiment) / days if days else 0.0,
        "per_run": runs,
    }


def _sentiment(settings: AlertSettings, matcher: TermMatcher, seeds: int, bg: dict) -> dict:
    delays, extra = [], 0
    onset = START + timedelta(hours=5)
    for seed in range(seeds):
        events = []
        for event in generate(StreamSpec(START, timedelta(hours=8), seed=900 + seed, **bg)):
            if event.channel == Channel.app and onset <= event.received_at < onset + timedelta(hours=1):
                event = event.model_copy(update={"sentiment": Sentiment(label=SentimentLabel.negative, score=-0.95)})
            events.append(event)
        engine = AlertEngine.build(matcher, settings, lambda: REPLAYED_AT)
        opened = [e for e in run_engine(engine, events) if e.alert.status == AlertStatus.open and e.alert.kind != AlertKind.message]
        hit = next((e for e in opened if e.alert.kind == AlertKind.sentiment_drop and e.event.received_at >= onset), None)
        if hit is not None:
            delays.append((hit.event.received_at - onset).total_seconds())
        extra += len({e.alert.alert_id for e in opened}) - (1 if hit else 0)
    return {"runs": seeds, "detected": len(delays), "delay_s_median": _median(delays),
            "delay_s_max": max(delays, default=None), "other_alerts": extra}


def _throughput(settings: AlertSettings, matcher: TermMatcher, bg: dict) -> dict:
    events = generate(StreamSpec(START, timedelta(hours=48), seed=77, **bg))
    engine = AlertEngine.build(matcher, settings, lambda: REPLAYED_AT)
    started = time.perf_counter()
    run_engine(engine, events)
    elapsed = time.perf_counter() - started
    return {"events": len(events), "seconds": round(elapsed, 3), "events_per_s": round(len(events) / elapsed, 1)}


def run_alert_benchmark(settings: AlertSettings, seeds: int = 5, steady_hours: float = 168.0,
                        log: Callable[[str], None] = lambda _: None, background: str = "real",
                        data_dir: Path | None = None, cache_dir: Path | None = None) -> dict:
    """``background``: "real" (the shared data sets, ``data_dir`` or Settings.shared_data; an error if they
    are missing, never a silent fallback) or "synthetic" (the generator's written texts)."""
    matcher = TermMatcher(load_rules(settings.rules_path))
    texts = None
    if background == "real":
        from topics.settings import Settings

        log("real texts and their predictions …")
        texts = load_real_texts(Path(data_dir or Settings().shared_data), Path(cache_dir or REPO / "var" / "cache"))
    elif background != "synthetic":
        raise ValueError(f"background: 'real' or 'synthetic', not {background!r}")
    bg = _background(texts)
    log("spike scenarios …")
    spikes = _spikes(settings, matcher, seeds, bg)
    steady = {}
    for name, variant in STEADY_VARIANTS.items():
        log(f"steady streams ({name}) …")
        steady[name] = _steady(settings, matcher, seeds, steady_hours, variant, bg)
    log("sentiment drops …")
    sentiment = _sentiment(settings, matcher, seeds, bg)
    log("cold start …")
    cold = _cold_start(settings, matcher, seeds, bg)
    # The same incidents on the written background (its technical rate is 5/h, not the texts' mix).
    cold_synthetic = _cold_start(settings, matcher, seeds, _background(None)) if texts is not None else None
    log("multi-signal incident …")
    multi = _multi_signal(settings, matcher, seeds, bg)
    log("throughput …")
    throughput = _throughput(settings, matcher, bg)
    streams = {"background": background, "messages_per_hour": STREAM_RATE_PER_HOUR,
               "rates_per_hour": {k.value: round(v, 2) for k, v in bg["rates_per_hour"].items()}}
    if texts is not None:
        streams["real_texts"] = texts.describe()
    return {
        "benchmark": "alerts",
        "created_at": datetime.now(timezone.utc).isoformat(),
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "settings": settings.model_dump(mode="json", exclude={"webhooks"}),
        "streams": streams,
        "summary": {
            "spike": [{k: v for k, v in s.items() if k != "per_run"} for s in spikes],
            "steady": {name: {k: v for k, v in report.items() if k != "per_run"} for name, report in steady.items()},
            "sentiment_drop": sentiment,
            "cold_start": [{k: v for k, v in s.items() if k not in ("per_run", "delay_s_by_seed")} for s in cold],
            "cold_start_synthetic_background": None if cold_synthetic is None else
            [{k: v for k, v in s.items() if k not in ("per_run", "delay_s_by_seed")} for s in cold_synthetic],
            "multi_signal": [{k: v for k, v in s.items() if k != "per_run"} for s in multi],
            "engine_throughput": throughput,
        },
        "spike": spikes,
        "cold_start": cold,
        "cold_start_synthetic_background": cold_synthetic,
        "multi_signal": multi,
        "steady": steady,
    }
