"""Spike and sentiment-drop detection over event-time windows.

Counts live in fixed event-time buckets per series (``issue_type:logistics``,
``theme:t12``, ``channel:app``; sentiment also over ``all``). A window of
``w`` buckets ending at the current bucket is compared with the rate of the
``baseline`` buckets just before it:

- volume spike: expected = baseline rate × w (never below a floor rate), and
  the window fires when count ≥ min_count, count ≥ min_ratio × expected and
  the Poisson upper tail P(X ≥ count | expected) < p_value;
- sentiment drop: the window's mean sentiment score is at least ``drop``
  below the baseline mean and z = drop / (sd_baseline / √n) ≥ z.

Everything keys on event time (``received_at``), so a replay gives the same
verdicts, and nothing fires before ``min_history`` of stream history exists.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from topics.schemas import AlertKind, EnrichedFeedback
from topics.settings import AlertSettings

# The expectation follows the latest hour of the baseline when it runs above the baseline's mean.
RECENT_MIN = 60
# Dispersion needs a few window-sized chunks of baseline, and is capped so a wild history cannot mute a series.
MIN_CHUNKS = 4
MAX_DISPERSION = 8.0
# Narrow to broad: a signal on a broader series can be explained by an open one on a narrower series.
DIMENSION_RANK = {"theme": 0, "issue_type": 1, "channel": 2, "all": 3}
ALL_SERIES = "all:*"


def poisson_tail(k: int, mu: float) -> float:
    """P(X ≥ k) for X ~ Poisson(mu), summed in log space (exact enough for tiny tails)."""
    if k <= 0:
        return 1.0
    if mu <= 0:
        return 0.0
    total, i = 0.0, k
    log_mu = math.log(mu)
    while True:
        term = math.exp(-mu + i * log_mu - math.lgamma(i + 1))
        total += term
        if i > mu and term < 1e-17 * max(total, 1e-300):
            break
        i += 1
        if i - k > 100_000:
            break
    return min(1.0, total)


def quasi_poisson_tail(k: int, mu: float, phi: float = 1.0) -> float:
    """Upper tail for an overdispersed count (variance φ·mu): the Poisson tail on the φ-scaled count."""
    if phi <= 1.0:
        return poisson_tail(k, mu)
    return poisson_tail(int(math.ceil(k / phi)), mu / phi)


def negative_binomial_tail(k: int, r: float, p: float) -> float:
    """P(X ≥ k) for X ~ NegBin(r, p) (failures before the r-th success, success probability p):
    the predictive count of a window when the rate itself is only known from ``r`` baseline events."""
    if k <= 0:
        return 1.0
    if r <= 0 or p >= 1.0:
        return 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    cdf = sum(math.exp(math.lgamma(x + r) - math.lgamma(r) - math.lgamma(x + 1) + r * log_p + x * log_q) for x in range(k))
    return min(1.0, max(0.0, 1.0 - cdf))


def dimension(series: str) -> str:
    return series.split(":", 1)[0]


def series_label(series: str) -> str:
    return series.split(":", 1)[1]


# Series that exist from the stream's start (their silence is information); a theme is born with its first message.
BORN_SERIES = frozenset({"theme"})


@dataclass(frozen=True)
class DetectorConfig:
    """The detector's view of ``AlertSettings`` (which holds every default), in the detector's units."""

    bucket_s: int
    windows_min: tuple[int, ...]
    baseline_min: int
    min_history_min: int
    p_value: float
    min_count: int
    min_ratio: float
    floor_per_hour: float
    ignore_issue_types: frozenset[str]
    sentiment_window_min: int
    sentiment_min_count: int
    sentiment_drop: float
    sentiment_z: float
    resolve_p_value: float
    prior_per_hour: dict[str, float] = field(default_factory=dict)
    cold_start_share: dict[str, float] = field(default_factory=dict)
    new_series_min_age_min: int = 60

    @classmethod
    def from_settings(cls, alerts: AlertSettings) -> DetectorConfig:
        return cls(
            bucket_s=alerts.bucket_s,
            windows_min=tuple(sorted(alerts.windows_min)),
            baseline_min=alerts.baseline_min,
            min_history_min=alerts.min_history_min,
            p_value=alerts.spike_p_value,
            min_count=alerts.spike_min_count,
            min_ratio=alerts.spike_min_ratio,
            floor_per_hour=alerts.baseline_floor_per_hour,
            ignore_issue_types=frozenset(alerts.spike_ignore_issue_types),
            sentiment_window_min=alerts.sentiment_window_min,
            sentiment_min_count=alerts.sentiment_min_count,
            sentiment_drop=alerts.sentiment_drop,
            sentiment_z=alerts.sentiment_z,
            resolve_p_value=alerts.resolve_p_value,
            prior_per_hour=dict(alerts.prior_per_hour),
            cold_start_share=dict(alerts.cold_start_share),
            new_series_min_age_min=alerts.new_series_min_age_min,
        )

    def prior(self, series: str) -> float:
        """The configured prior rate per hour of a series (its own entry, else its dimension's)."""
        if series in self.prior_per_hour:
            return self.prior_per_hour[series]
        return self.prior_per_hour.get(dimension(series), self.floor_per_hour)

    def buckets(self, minutes: int) -> int:
        return max(1, round(minutes * 60 / self.bucket_s))

    @property
    def horizon_buckets(self) -> int:
        """How far back any window or baseline reaches."""
        longest = max((*self.windows_min, self.sentiment_window_min))
        return self.buckets(longest + self.baseline_min) + 1


@dataclass
class Bucket:
    count: int = 0
    score_sum: float = 0.0
    score_sq: float = 0.0

    def add(self, score: float) -> None:
        self.count += 1
        self.score_sum += score
        self.score_sq += score * score


@dataclass
class SeriesCounts:
    """Per-series event-time buckets, with the set of buckets changed since the last save."""

    buckets: dict[str, dict[int, Bucket]] = field(default_factory=dict)
    dirty: set[tuple[str, int]] = field(default_factory=set)

    def add(self, series: str, bucket: int, score: float) -> None:
        self.buckets.setdefault(series, {}).setdefault(bucket, Bucket()).add(score)
        self.dirty.add((series, bucket))

    def put(self, series: str, bucket: int, value: Bucket) -> None:
        self.buckets.setdefault(series, {})[bucket] = value

    def total(self, series: str, first: int, last: int) -> Bucket:
        """Sum of buckets first..last inclusive."""
        out = Bucket()
        per_series = self.buckets.get(series)
        if not per_series:
            return out
        if last - first + 1 < len(per_series):
            items = ((b, per_series.get(b)) for b in range(first, last + 1))
        else:
            items = ((b, v) for b, v in per_series.items() if first <= b <= last)
        for _, value in items:
            if value is not None:
                out.count += value.count
                out.score_sum += value.score_sum
                out.score_sq += value.score_sq
        return out

    def prune(self, before: int) -> None:
        for series in list(self.buckets):
            per_series = self.buckets[series]
            for bucket in [b for b in per_series if b < before]:
                del per_series[bucket]
            if not per_series:
                del self.buckets[series]


@dataclass(frozen=True)
class Signal:
    """The verdict on one series at one moment."""

    kind: AlertKind
    series: str
    firing: bool
    # Back to baseline (the resolution test); a firing signal is never calm.
    calm: bool
    window_min: int
    count: int
    # spike: expected count in the window; sentiment_drop: baseline mean score.
    baseline: float
    # spike: the count; sentiment_drop: the window's mean score.
    observed: float
    p_value: float | None = None
    z: float | None = None
    # Quasi-Poisson dispersion φ used by the volume test (1 = plain Poisson).
    dispersion: float = 1.0
    # Judged on a prior (cold start) rather than the series' own full baseline.
    cold: bool = False
    # Share of the window's messages from VIP customers, and their mean sentiment (severity).
    vip_share: float = 0.0
    mean_score: float = 0.0


def event_series(event: EnrichedFeedback, config: DetectorConfig) -> tuple[list[str], list[str]]:
    """(volume series, sentiment series) an event counts in."""
    return series_of(event.theme_id, event.primary_issue.value, event.channel.value, config)


def series_of(theme_id: str | None, primary_issue: str, channel: str, config: DetectorConfig) -> tuple[list[str], list[str]]:
    volume: list[str] = []
    if theme_id:
        volume.append(f"theme:{theme_id}")
    if primary_issue not in config.ignore_issue_types:
        volume.append(f"issue_type:{primary_issue}")
    volume.append(f"channel:{channel}")
    sentiment = [s for s in volume if dimension(s) != "issue_type"] + [ALL_SERIES]
    return volume, sentiment


def _as_utc(ts: datetime) -> datetime:
    return ts.astimezone(timezone.utc)


class Detector:
    """Owns the bucket counts and the stream's event-time bounds; evaluates series on demand."""

    VOLUME_PREFIX = "v|"
    SENTIMENT_PREFIX = "s|"
    # Co-occurrence counts of two volume series (an event in both), to tell whether one spike explains another.
    PAIR_PREFIX = "p|"
    # VIP customers' messages per volume series (severity).
    VIP_PREFIX = "vip|"

    def __init__(self, config: DetectorConfig, counts: SeriesCounts | None = None):
        self.config = config
        self.counts = counts or SeriesCounts()
        self.stream_start: int | None = None  # first bucket ever seen
        self.watermark: datetime | None = None  # latest event time seen
        # A theme's parent series (the issue type of its latest message): a young theme is judged against it.
        self.parents: dict[str, str] = {}

    def bucket_of(self, ts: datetime) -> int:
        return int(_as_utc(ts).timestamp() // self.config.bucket_s)

    def observe(self, event: EnrichedFeedback, vip: bool = False) -> tuple[list[str], list[str]]:
        """Count one event; returns the series it touched."""
        return self.count(event.received_at, event.theme_id, event.primary_issue.value, event.channel.value,
                          event.sentiment.score, vip)

    def count(self, received_at: datetime, theme_id: str | None, primary_issue: str, channel: str, score: float,
              vip: bool = False) -> tuple[list[str], list[str]]:
        """Count one message by its fields (an event, or a stored row when seeding from history)."""
        bucket = self.bucket_of(received_at)
        if self.stream_start is None or bucket < self.stream_start:
            self.stream_start = bucket
        if self.watermark is None or received_at > self.watermark:
            self.watermark = _as_utc(received_at)
        volume, sentiment = series_of(theme_id, primary_issue, channel, self.config)
        if theme_id:
            self.parents[f"theme:{theme_id}"] = f"issue_type:{primary_issue}"
        for series in volume:
            self.counts.add(self.VOLUME_PREFIX + series, bucket, score)
            if vip:
                self.counts.add(self.VIP_PREFIX + series, bucket, score)
        for i, first in enumerate(volume):
            for second in volume[i + 1 :]:
                self.counts.add(self._pair(first, second), bucket, score)
        # Sentiment series for dimensions not already counted as volume (the channel/theme buckets serve both).
        for series in sentiment:
            if series not in volume:
                self.counts.add(self.SENTIMENT_PREFIX + series, bucket, score)
        return volume, sentiment

    def _pair(self, a: str, b: str) -> str:
        return self.PAIR_PREFIX + "|".join(sorted((a, b)))

    def residual(self, signal: Signal, other: str, now: datetime) -> Signal:
        """``signal`` recomputed without the events that are also in series ``other`` (same window, same baseline)."""
        cfg = self.config
        end = self.bucket_of(now)
        w = cfg.buckets(signal.window_min)
        overlap = self.counts.total(self._pair(signal.series, other), end - w + 1, end).count
        count = signal.count - overlap
        p = quasi_poisson_tail(count, signal.baseline, signal.dispersion) if signal.baseline > 0 else 1.0
        firing = count >= cfg.min_count and count >= cfg.min_ratio * signal.baseline and p < cfg.p_value
        return Signal(signal.kind, signal.series, firing, not firing, signal.window_min, count, signal.baseline, count, p)

    def _history(self, now_bucket: int) -> int:
        return 0 if self.stream_start is None else now_bucket - self.stream_start + 1

    def prune(self) -> None:
        if self.watermark is not None:
            self.counts.prune(self.bucket_of(self.watermark) - self.config.horizon_buckets)

    # --- verdicts ---------------------------------------------------------------

    def series_start(self, series: str) -> int | None:
        """First bucket of the stream a series is judged from: the stream's start, or for a series that
        is born with its first message (a theme) that message's bucket (its earlier silence means nothing)."""
        if self.stream_start is None:
            return None
        if dimension(series) not in BORN_SERIES:
            return self.stream_start
        per_series = self.counts.buckets.get(self.VOLUME_PREFIX + series)
        if not per_series:
            return self.stream_start
        return max(self.stream_start, min(per_series))

    def volume(self, series: str, now: datetime, windows: Iterable[int] | None = None, since: datetime | None = None) -> Signal:
        """The most significant window's verdict for a volume series.

        ``since``: the start of an open incident; the baseline then ends before it, so an ongoing
        spike is never absorbed into its own baseline (and resolves only when really back to it).

        Warm-up: a series with less than ``min_history`` of history is judged on its shortest
        window only, against its prior rate blended with the history there is (cold start); a
        series born with its first message (a theme) is not judged before ``new_series_min_age``.
        """
        cfg = self.config
        end = self.bucket_of(now)
        start = self.series_start(series)
        start = end if start is None else start
        history = end - start + 1
        stored = self.VOLUME_PREFIX + series
        shortest = min(cfg.windows_min)
        young = dimension(series) in BORN_SERIES and history < cfg.buckets(max(cfg.new_series_min_age_min, 1))
        best: Signal | None = None
        for window_min in windows or cfg.windows_min:
            w = cfg.buckets(window_min)
            base_end = end - w if since is None else min(end - w, self.bucket_of(since) - w)
            base_n = min(cfg.buckets(cfg.baseline_min), base_end - start + 1)
            window = self.counts.total(stored, end - w + 1, end)
            count = window.count
            warm = history >= cfg.buckets(cfg.min_history_min) and base_n >= w
            parent = self.parents.get(series) if young else None
            if young and (window_min != shortest or parent is None or series_label(parent) in cfg.ignore_issue_types):
                signal = Signal(AlertKind.spike, series, False, True, window_min, count, 0.0, count)
            elif not young and not warm and window_min != shortest:
                signal = Signal(AlertKind.spike, series, False, True, window_min, count, 0.0, count)
            else:
                if young:
                    # A theme born minutes ago has no rate of its own: it spikes only above what its whole
                    # issue type is expected to bring in the window.
                    judged = self.volume(parent, now, [window_min], since=since)
                    if judged.cold or judged.baseline <= 0:
                        # Not while the stream itself is young: its issue types are judged on priors.
                        signal = Signal(AlertKind.spike, series, False, True, window_min, count, 0.0, count)
                        if best is None or _more_significant(signal, best):
                            best = signal
                        continue
                    expected, phi = judged.baseline, 1.0
                elif warm:
                    expected, phi = self._expectation(stored, base_end, w, base_n)
                    base_count = self.counts.total(stored, base_end - base_n + 1, base_end).count
                else:
                    limit = None if since is None else self.bucket_of(since) - 1
                    expected, phi = self._cold_expectation(series, stored, start, end, w, limit), 1.0
                p = quasi_poisson_tail(count, expected, phi)
                if warm and not young and p < cfg.p_value:
                    # The baseline's rate is itself an estimate: a short baseline (the first hours, a
                    # theme's first hours) or a sparse series knows it loosely. The predictive count of
                    # the window given the baseline's events (negative binomial) must be small too: a few
                    # quiet baseline minutes by chance must not turn ordinary traffic into a "spike".
                    p = max(p, negative_binomial_tail(count, base_count + 0.5, base_n / (base_n + w)))
                firing = count >= cfg.min_count and count >= cfg.min_ratio * expected and p < cfg.p_value
                calm = not firing and (p >= cfg.resolve_p_value or count < cfg.min_count)
                vip = self.counts.total(self.VIP_PREFIX + series, end - w + 1, end).count
                signal = Signal(AlertKind.spike, series, firing, calm, window_min, count, expected, count, p, dispersion=phi,
                                cold=not warm, vip_share=vip / count if count else 0.0,
                                mean_score=window.score_sum / count if count else 0.0)
            if best is None or _more_significant(signal, best):
                best = signal
        assert best is not None
        return best

    def _cold_expectation(self, series: str, stored: str, start: int, end: int, w: int, limit: int | None = None) -> float:
        """Expected count in the window from a young stream's start: the prior rate fills the missing
        part of ``min_history`` before the window, and the series' share of the rest of the stream
        (at least ``cold_start_share``) keeps a stream busier than the prior from alerting."""
        cfg = self.config
        w_eff = min(w, end - start + 1)
        # The baseline ends before the window, and before an open incident (``limit``).
        base_last = end - w_eff if limit is None else min(end - w_eff, limit)
        base_n = max(0, base_last - start + 1)
        h = cfg.buckets(cfg.min_history_min)
        per_bucket = cfg.bucket_s / 3600
        base = self.counts.total(stored, start, base_last).count if base_n else 0
        rate = (base + cfg.prior(series) * per_bucket * max(0, h - base_n)) / max(h, base_n, 1)
        # The rest of the stream in the window (all events minus this series') at the prior share.
        total = self.counts.total(self.SENTIMENT_PREFIX + ALL_SERIES, end - w_eff + 1, end).count
        count = self.counts.total(stored, end - w_eff + 1, end).count
        share = min(cfg.cold_start_share.get(dimension(series), 0.2), 0.95)
        from_rest = share / (1 - share) * max(0, total - count)
        return max(rate * w_eff, from_rest, cfg.floor_per_hour * per_bucket * w_eff)

    def _expectation(self, stored: str, base_end: int, w: int, base_n: int) -> tuple[float, float]:
        """Expected count in a window of ``w`` buckets from the baseline ending at ``base_end``, and the dispersion.

        The rate is the larger of the whole baseline's and its latest hour's, so a daily ramp
        (mornings) raises the expectation as it happens. The dispersion φ = variance / mean of
        the window-sized chunks of the baseline (≥ 1, ≤ MAX_DISPERSION) widens the test for
        bursty series: real feedback is rarely as regular as a Poisson process.
        """
        cfg = self.config
        base = self.counts.total(stored, base_end - base_n + 1, base_end).count
        recent_n = min(base_n, cfg.buckets(RECENT_MIN))
        recent = self.counts.total(stored, base_end - recent_n + 1, base_end).count
        floor = cfg.floor_per_hour * cfg.bucket_s / 3600
        expected = max(base / base_n, recent / recent_n, floor) * w
        chunks = [self.counts.total(stored, start, start + w - 1).count for start in range(base_end - (base_n // w) * w + 1, base_end + 1, w)]
        phi = 1.0
        if len(chunks) >= MIN_CHUNKS:
            mean = sum(chunks) / len(chunks)
            if mean > 0:
                variance = sum((c - mean) ** 2 for c in chunks) / (len(chunks) - 1)
                phi = min(max(variance / mean, 1.0), MAX_DISPERSION)
        return expected, phi

    def sentiment(self, series: str, now: datetime, without: str | None = None, since: datetime | None = None) -> Signal:
        """Sentiment verdict; ``without`` leaves out the events shared with another series (residual test);
        ``since``: an open drop's start, before which the baseline ends (as for volume)."""
        cfg = self.config
        end = self.bucket_of(now)
        history = self._history(end)
        stored = self._sentiment_store(series)
        w = cfg.buckets(cfg.sentiment_window_min)
        base_end = end - w if since is None else min(end - w, self.bucket_of(since) - w)
        base_n = min(cfg.buckets(cfg.baseline_min), base_end - (self.stream_start or 0) + 1)
        window = self.counts.total(stored, end - w + 1, end)
        if without is not None:
            shared = self.counts.total(
                self._sentiment_store(without) if series == ALL_SERIES else self._pair(series, without), end - w + 1, end
            )
            window = Bucket(window.count - shared.count, window.score_sum - shared.score_sum, window.score_sq - shared.score_sq)
        mean_w = window.score_sum / window.count if window.count > 0 else 0.0
        quiet = Signal(AlertKind.sentiment_drop, series, False, True, cfg.sentiment_window_min, max(window.count, 0), 0.0, mean_w)
        if history < cfg.buckets(cfg.min_history_min) or base_n < w or window.count <= 0:
            return quiet
        base = self.counts.total(stored, base_end - base_n + 1, base_end)
        if base.count < cfg.sentiment_min_count:
            return quiet
        mean_b = base.score_sum / base.count
        var_b = max(base.score_sq / base.count - mean_b * mean_b, 0.0)
        sd_b = max(math.sqrt(var_b), 0.1)
        drop = mean_b - mean_w
        z = drop / (sd_b / math.sqrt(window.count))
        firing = window.count >= cfg.sentiment_min_count and drop >= cfg.sentiment_drop and z >= cfg.sentiment_z
        calm = not firing and (drop < cfg.sentiment_drop / 2 or window.count < cfg.sentiment_min_count)
        return Signal(AlertKind.sentiment_drop, series, firing, calm, cfg.sentiment_window_min, window.count, mean_b, mean_w, None, z)

    def _sentiment_store(self, series: str) -> str:
        # channel and theme buckets are shared with volume counting; ``all`` has its own.
        return (self.SENTIMENT_PREFIX if series == ALL_SERIES else self.VOLUME_PREFIX) + series


def _more_significant(a: Signal, b: Signal) -> bool:
    if a.firing != b.firing:
        return a.firing
    pa = a.p_value if a.p_value is not None else 1.0
    pb = b.p_value if b.p_value is not None else 1.0
    return pa < pb
