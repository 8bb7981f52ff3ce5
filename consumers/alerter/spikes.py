"""Spike and sentiment-drop detection over event-time windows.

Counts live in fixed event-time buckets per series (``issue_type:logistics``,
``theme:t12``, ``channel:app``; sentiment also over ``all``). A window of
``w`` buckets ending at the current bucket is compared with the rate of the
``baseline`` buckets just before it:

- volume spike: expected = baseline rate × w (never below a floor rate), and
  the window fires when count ≥ min_count, count ≥ min_ratio × expected and
  the Poisson upper tail P(X ≥ count | expected) < p_value;
- sentiment drop: the window's mean sentiment score is at least ``drop``
  below the baseline mean and z = drop / √(sd_baseline² (1/n + 1/n_baseline) + drift) ≥ z, where
  drift is the variance of the window mean between windows beyond sampling noise.

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
# Dispersion needs a few chunks of baseline, and is capped so a wild history cannot mute a series.
MIN_CHUNKS = 4
DISPERSION_CHUNK_MIN = 15
# Pooled burstiness: series with fewer messages per chunk say little; the pool weighs at most this many chunks.
POOL_MIN_MEAN = 0.5
POOL_MAX_WEIGHT = 200.0
# Entries of the chunk and pool caches before they are cleared (a few per series and quarter hour).
CACHE_SIZE = 20_000
# The remembered burstiness halves its weight every this many hours of event time.
MEMORY_HALF_LIFE_H = 48.0
MAX_DISPERSION = 4.0
# Sentiment: the window mean's drift between windows (sd) assumed before the baseline shows its own, and how
# many baseline windows that assumption weighs.
SENTIMENT_DRIFT_PRIOR = 0.1
SENTIMENT_DRIFT_PRIOR_WEIGHT = 6.0
# Cold start: the prior share of a series in the stream weighs as much as this many messages of history.
COLD_SHARE_WEIGHT = 30.0
# A channel's usual share of an issue type: its share of the whole stream weighs as much as this many messages.
FOCUS_PRIOR_WEIGHT = 20.0
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


def nb_tail(k: int, mean: float, c: float) -> float:
    """P(X ≥ k) for an over-dispersed count of this mean whose rate varies from window to window with
    relative variance ``c`` (negative binomial NB2: variance = mean + c·mean², shape 1/c); c = 0 is Poisson."""
    if c <= 1e-9:
        return poisson_tail(k, mean)
    if mean <= 0:
        return 0.0 if k > 0 else 1.0
    shape = 1.0 / c
    return negative_binomial_tail(k, shape, shape / (shape + mean))


def combined_dispersion(burst: float, events: float) -> float:
    """Relative variance of a window's rate when it varies by ``burst`` between windows and is itself
    only known from ``events`` baseline events (relative variance 1/events): (1+b)(1+1/r) − 1."""
    return (1.0 + burst) * (1.0 + 1.0 / max(events, 0.5)) - 1.0


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
    # Open alerts are judged on this window (and young series at most on it).
    open_window_min: int = 15
    # Over-dispersion of a series' rate (NB2 relative variance): assumed before its own history
    # shows it, and how many baseline chunks that assumption weighs against the estimate.
    prior_dispersion: float = 0.3
    dispersion_prior_weight: float = 30.0

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
            open_window_min=alerts.open_window_min,
            prior_dispersion=alerts.prior_dispersion,
            dispersion_prior_weight=alerts.dispersion_prior_weight,
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
    # Relative variance c of the window's rate used by the volume test (NB2; 0 = plain Poisson).
    dispersion: float = 0.0
    # Judged on a prior (cold start) rather than the series' own full baseline.
    cold: bool = False
    # Share of the window's messages from VIP customers, and their mean sentiment (severity).
    vip_share: float = 0.0
    mean_score: float = 0.0
    # Combined evidence: the channel where the window's messages crowd (channel series, its count), when
    # that is what made the verdict significant.
    focus: tuple[str, int] | None = None


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
        # Stored with the state (a restarted alerter judges young themes the same way): the theme's latest
        # bucket, and the themes changed since the last save.
        self.parents: dict[str, str] = {}
        self.parent_buckets: dict[str, int] = {}
        self.parents_dirty: set[str] = set()
        # Pooled burstiness per (dimension, baseline end, baseline length): it changes once a bucket.
        self._pool_cache: dict[tuple[str, int, int], tuple[float, float]] = {}
        self._chunk_cache: dict[tuple[str, int, int], tuple[float, float, int]] = {}
        # Decaying sums of the pooled burstiness per dimension (see _remember), and the hour last added.
        self.memory: dict[str, tuple[float, float, float]] = {}
        self.memory_hour: int | None = None

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
            self._remember()
        volume, sentiment = series_of(theme_id, primary_issue, channel, self.config)
        if theme_id:
            theme = f"theme:{theme_id}"
            if bucket >= self.parent_buckets.get(theme, bucket):
                self.parents[theme] = f"issue_type:{primary_issue}"
                self.parent_buckets[theme] = bucket
                self.parents_dirty.add(theme)
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
        p = nb_tail(count, signal.baseline, signal.dispersion) if signal.baseline > 0 else 1.0
        firing = count >= cfg.min_count and count >= cfg.min_ratio * signal.baseline and p < cfg.p_value
        return Signal(signal.kind, signal.series, firing, not firing, signal.window_min, count, signal.baseline, count, p,
                      dispersion=signal.dispersion)

    def _history(self, now_bucket: int) -> int:
        return 0 if self.stream_start is None else now_bucket - self.stream_start + 1

    def prune(self) -> None:
        if self.watermark is not None:
            oldest = self.bucket_of(self.watermark) - self.config.horizon_buckets
            self.counts.prune(oldest)
            for theme in [t for t, b in self.parent_buckets.items() if b < oldest]:
                del self.parent_buckets[theme]
                self.parents.pop(theme, None)
                self.parents_dirty.discard(theme)

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
        judged_max = cfg.open_window_min
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
            quiet = Signal(AlertKind.spike, series, False, True, window_min, count, 0.0, count)
            if self._ignored_theme(series):
                # A theme of praise is praise: its surge is no incident, whatever its age.
                signal = quiet
            elif young and (window_min > judged_max or parent is None or series_label(parent) in cfg.ignore_issue_types):
                signal = quiet
            elif not young and not warm and window_min > judged_max:
                signal = quiet
            else:
                if young:
                    # A theme born minutes ago has no rate of its own: it spikes only above what its whole
                    # issue type is expected to bring in the window (and as loosely as that is known).
                    judged = self.volume(parent, now, [window_min], since=since)
                    if judged.cold or judged.baseline <= 0:
                        # Not while the stream itself is young: its issue types are judged on priors.
                        if best is None or _more_significant(quiet, best):
                            best = quiet
                        continue
                    expected, c = judged.baseline, judged.dispersion
                elif warm:
                    expected, burst = self._expectation(stored, base_end, w, base_n)
                    # The baseline's rate is itself an estimate from its events: a short baseline (the first
                    # hours) or a sparse series knows it loosely, so its predictive count is wider.
                    base_count = self.counts.total(stored, base_end - base_n + 1, base_end).count
                    c = combined_dispersion(burst, base_count + 0.5)
                else:
                    limit = None if since is None else self.bucket_of(since) - 1
                    expected = self._cold_expectation(series, stored, start, end, w, limit)
                    # The prior rate and share are the conservative part here (both at least the stream's own):
                    # a dispersion on top of them would need 12+ messages before the first alert of a restart.
                    c = 0.0
                p = nb_tail(count, expected, c)
                focus = None
                if dimension(series) == "issue_type" and not young and count >= cfg.min_count and p < cfg.resolve_p_value:
                    # Combined evidence of the signals one incident touches: its messages crowd into one
                    # channel of the issue type far beyond that channel's usual share of it.
                    base_first = start if not warm else base_end - base_n + 1
                    base_last = base_end if warm else end - min(w, history)
                    focus = self._channel_focus(series, end, w, base_first, base_last, expected, c)
                    if focus is not None and focus[2] < p:
                        p = focus[2]
                    else:
                        focus = None
                firing = count >= cfg.min_count and count >= cfg.min_ratio * expected and p < self._threshold(window_min)
                calm = not firing and (p >= cfg.resolve_p_value or count < cfg.min_count)
                vip = self.counts.total(self.VIP_PREFIX + series, end - w + 1, end).count
                signal = Signal(AlertKind.spike, series, firing, calm, window_min, count, expected, count, p, dispersion=c,
                                cold=not warm, vip_share=vip / count if count else 0.0,
                                mean_score=window.score_sum / count if count else 0.0,
                                focus=None if focus is None else (focus[0], focus[1]))
            if best is None or _more_significant(signal, best):
                best = signal
        assert best is not None
        return best

    def _ignored_theme(self, series: str) -> bool:
        """A theme whose messages are of an issue type that never spikes (``spike_ignore_issue_types``)."""
        parent = self.parents.get(series) if dimension(series) == "theme" else None
        return parent is not None and series_label(parent) in self.config.ignore_issue_types

    def _threshold(self, window_min: int) -> float:
        """The spike p-value threshold of a window: ``spike_p_value`` for windows of the open-alert window's
        length or longer, proportionally stricter for shorter ones (a 5-minute window is tested three times as
        often as a 15-minute one: the same false-alert rate per hour for each)."""
        cfg = self.config
        return cfg.p_value * min(1.0, window_min / cfg.open_window_min)

    def _channel_focus(self, series: str, end: int, w: int, base_first: int, base_last: int, expected: float,
                       c: float) -> tuple[str, int, float] | None:
        """The channel where the window's messages of ``series`` crowd most beyond the channel's usual share
        of it: (channel series, its count, p-value Bonferroni-corrected over the channels), if any fires.

        The share is the pair's count over the issue type's in the baseline, with the channel's share of
        the whole stream as a prior weighing FOCUS_PRIOR_WEIGHT messages; the expectation is the issue
        type's expected count × that share, tested like the issue type itself (same dispersion)."""
        cfg = self.config
        channels = [key[len(self.VOLUME_PREFIX):] for key in self.counts.buckets
                    if key.startswith(self.VOLUME_PREFIX + "channel:")]
        if not channels or base_last < base_first:
            return None
        stored = self.VOLUME_PREFIX + series
        issue_base = self.counts.total(stored, base_first, base_last).count
        # The channel's share of everything: over the baseline, or (cold) over the stream so far.
        all_first, all_last = (base_first, base_last) if issue_base else (base_first, end)
        all_count = self.counts.total(self.SENTIMENT_PREFIX + ALL_SERIES, all_first, all_last).count
        best: tuple[str, int, float] | None = None
        for channel in channels:
            pair = self._pair(series, channel)
            n = self.counts.total(pair, end - w + 1, end).count
            if n < cfg.min_count:
                continue
            channel_all = self.counts.total(self.VOLUME_PREFIX + channel, all_first, all_last).count
            prior = (channel_all + 1) / (all_count + len(channels))
            share = (self.counts.total(pair, base_first, base_last).count + prior * FOCUS_PRIOR_WEIGHT) / (issue_base + FOCUS_PRIOR_WEIGHT)
            focus_expected = expected * share
            if n < cfg.min_ratio * focus_expected:
                continue
            p = min(1.0, nb_tail(n, focus_expected, c) * len(channels))
            if best is None or p < best[2]:
                best = (channel, n, p)
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
        # The rest of the stream in the window (all events minus this series') at the series' share: the
        # prior share (cold_start_share) as much as COLD_SHARE_WEIGHT messages, updated by what the stream
        # before the window showed (so a quiet series in a busy stream is not held to 20 % of it).
        total = self.counts.total(self.SENTIMENT_PREFIX + ALL_SERIES, end - w_eff + 1, end).count
        count = self.counts.total(stored, end - w_eff + 1, end).count
        prior_share = min(cfg.cold_start_share.get(dimension(series), 0.2), 0.95)
        all_before = self.counts.total(self.SENTIMENT_PREFIX + ALL_SERIES, start, base_last).count if base_n else 0
        share = (base + prior_share * COLD_SHARE_WEIGHT) / (all_before + COLD_SHARE_WEIGHT)
        share = min(max(share, prior_share / 2), 0.95)
        # The rest in a short window is noisy (a lull elsewhere is no spike here): also its rate over all
        # the history there is, scaled to the window; the larger of the two.
        history = end - start + 1
        rest_history = (self.counts.total(self.SENTIMENT_PREFIX + ALL_SERIES, start, end).count
                        - self.counts.total(stored, start, end).count)
        rest = max(total - count, rest_history * w_eff / history, 0)
        from_rest = share / (1 - share) * rest
        return max(rate * w_eff, from_rest, cfg.floor_per_hour * per_bucket * w_eff)

    def _expectation(self, stored: str, base_end: int, w: int, base_n: int) -> tuple[float, float]:
        """Expected count in a window of ``w`` buckets from the baseline ending at ``base_end``, and the
        series' burstiness b (relative variance of its rate between windows, NB2).

        The rate is the larger of the whole baseline's and its latest hour's, so a daily ramp
        (mornings) raises the expectation as it happens. Real feedback is burstier than a Poisson
        process: b is estimated from the window-sized chunks of the baseline by moments,
        (variance − mean) / mean², and shrunk toward ``prior_dispersion`` (weighing
        ``dispersion_prior_weight`` chunks): a few hours show a series' burstiness only roughly.
        """
        cfg = self.config
        base = self.counts.total(stored, base_end - base_n + 1, base_end).count
        recent_n = min(base_n, cfg.buckets(RECENT_MIN))
        recent = self.counts.total(stored, base_end - recent_n + 1, base_end).count
        floor = cfg.floor_per_hour * cfg.bucket_s / 3600
        expected = max(base / base_n, recent / recent_n, floor) * w
        own = self._chunk_stats(stored, base_end, base_n)
        estimate, weight = 0.0, 0.0
        if own is not None and own[0] > 0:
            mean, variance, n = own
            estimate, weight = min(max((variance - mean) / (mean * mean), 0.0), MAX_DISPERSION), n - 1
        dim = dimension(stored[len(self.VOLUME_PREFIX):])
        pooled, pooled_weight = self._pooled_dispersion(dim, base_end, base_n)
        pooled_weight = min(pooled_weight, POOL_MAX_WEIGHT)
        prior = cfg.dispersion_prior_weight
        burst = ((prior * cfg.prior_dispersion + pooled_weight * pooled + weight * estimate)
                 / (prior + pooled_weight + weight))
        if dim != "issue_type":
            # A channel sums several issue types (a theme is part of one): its moments look calm, but its
            # tail is one issue type's burst passing through it. It is at least as bursty as they are.
            issue, issue_weight = self._pooled_dispersion("issue_type", base_end, base_n)
            issue_weight = min(issue_weight, POOL_MAX_WEIGHT)
            burst = max(burst, (prior * cfg.prior_dispersion + issue_weight * issue) / (prior + issue_weight))
        return expected, burst

    def _chunk_stats(self, stored: str, base_end: int, base_n: int) -> tuple[float, float, int] | None:
        """Mean and variance of a series' counts in the 15-minute chunks of the baseline (whatever the
        window: shorter chunks are mostly Poisson noise, and 6 hours hold too few hour-long ones).

        Chunks are aligned on the clock, so the figures change once a chunk and are cached."""
        size = self.config.buckets(DISPERSION_CHUNK_MIN)
        last = (base_end + 1) // size * size - 1  # end of the latest whole chunk in the baseline
        n = (last - (base_end - base_n)) // size
        if n < MIN_CHUNKS:
            return None
        key = (stored, last, n)
        if key in self._chunk_cache:
            return self._chunk_cache[key]
        first = last - n * size + 1
        chunks = [0] * n
        for bucket, value in self.counts.buckets.get(stored, {}).items():
            if first <= bucket <= last:
                chunks[(bucket - first) // size] += value.count
        mean = sum(chunks) / n
        result = (mean, sum((x - mean) ** 2 for x in chunks) / (n - 1), n)
        if len(self._chunk_cache) > CACHE_SIZE:
            self._chunk_cache.clear()
        self._chunk_cache[key] = result
        return result

    def _pool_sums(self, dim: str, base_end: int, base_n: int) -> tuple[float, float, float]:
        """Σ(n−1)(variance − mean), Σ(n−1)·mean² and Σ(n−1) over the chunks of every series of one
        dimension in a baseline: the pooled moment estimate of their burstiness is the first over the second."""
        size = self.config.buckets(DISPERSION_CHUNK_MIN)
        key = (dim, (base_end + 1) // size, (base_n + size - 1) // size)
        if key in self._pool_cache:
            return self._pool_cache[key]
        prefix = f"{self.VOLUME_PREFIX}{dim}:"
        num = den = weight = 0.0
        for stored in [k for k in self.counts.buckets if k.startswith(prefix)]:
            stats = self._chunk_stats(stored, base_end, base_n)
            if stats is None or stats[0] < POOL_MIN_MEAN:
                continue
            mean, variance, n = stats
            num += (n - 1) * (variance - mean)
            den += (n - 1) * mean * mean
            weight += n - 1
        if len(self._pool_cache) > CACHE_SIZE:
            self._pool_cache.clear()
        self._pool_cache[key] = (num, den, weight)
        return num, den, weight

    def _pooled_dispersion(self, dim: str, base_end: int, base_n: int) -> tuple[float, float]:
        """The burstiness of all series of one dimension (every issue type, every channel, every theme),
        and its weight in chunks: over this baseline and the remembered earlier ones (``memory``, decaying
        with a half-life of MEMORY_HALF_LIFE_H). Six hours show one series' burstiness only roughly (six
        hourly swings, often all calm); its siblings over days show the stream's."""
        num, den, weight = self._pool_sums(dim, base_end, base_n)
        m_num, m_den, m_weight = self.memory.get(dim, (0.0, 0.0, 0.0))
        num, den, weight = num + m_num, den + m_den, weight + m_weight
        return (min(max(num / den, 0.0), MAX_DISPERSION), weight) if den > 0 else (0.0, 0.0)

    def _remember(self) -> None:
        """Once an hour of event time: add the hour's baseline burstiness of each dimension to the decaying
        memory (stored with the state, so a restarted alerter remembers as much)."""
        cfg = self.config
        hour_len = cfg.buckets(60)
        hour = self.bucket_of(self.watermark) // hour_len
        if self.memory_hour is None or hour <= self.memory_hour:
            self.memory_hour = hour if self.memory_hour is None else self.memory_hour
            return
        decay = 0.5 ** ((hour - self.memory_hour) / MEMORY_HALF_LIFE_H)
        base_end = hour * hour_len - 1
        base_n = min(cfg.buckets(cfg.baseline_min), base_end - (self.stream_start or base_end) + 1)
        for dim in ("issue_type", "channel", "theme"):
            old = self.memory.get(dim, (0.0, 0.0, 0.0))
            new = self._pool_sums(dim, base_end, base_n) if base_n > 0 else (0.0, 0.0, 0.0)
            self.memory[dim] = tuple(decay * a + b for a, b in zip(old, new))
        self.memory_hour = hour

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
        # Two-sample z: the baseline's mean is itself an estimate (a young stream's hour of a channel holds
        # a few dozen messages, and its mean can sit 0.1-0.2 off by chance). Real traffic's mean also drifts
        # between windows beyond that noise (its mix of praise and complaints changes hour by hour): that
        # drift's variance, estimated from the baseline's windows, is added like the burstiness of volume.
        drift = self._sentiment_drift(stored, base_end, base_n, w, var_b)
        z = drop / math.sqrt(sd_b * sd_b * (1 / window.count + 1 / base.count) + drift)
        firing = window.count >= cfg.sentiment_min_count and drop >= cfg.sentiment_drop and z >= cfg.sentiment_z
        calm = not firing and (drop < cfg.sentiment_drop / 2 or window.count < cfg.sentiment_min_count)
        return Signal(AlertKind.sentiment_drop, series, firing, calm, cfg.sentiment_window_min, window.count, mean_b, mean_w, None, z)

    def _sentiment_drift(self, stored: str, base_end: int, base_n: int, w: int, var_b: float) -> float:
        """Variance of a series' window mean between windows beyond sampling noise: a moment estimate over
        the baseline's window-long chunks (aligned on the clock, cached), shrunk toward SENTIMENT_DRIFT_PRIOR."""
        last = (base_end + 1) // w * w - 1
        n = (last - (base_end - base_n)) // w
        key = ("drift", stored, last, n)
        if key not in self._chunk_cache:
            first = last - n * w + 1
            chunks = [Bucket() for _ in range(max(n, 0))]
            for bucket, value in self.counts.buckets.get(stored, {}).items():
                if first <= bucket <= last:
                    c = chunks[(bucket - first) // w]
                    c.count, c.score_sum = c.count + value.count, c.score_sum + value.score_sum
            used = [c for c in chunks if c.count >= 2]
            estimate, weight = 0.0, 0.0
            if len(used) >= MIN_CHUNKS:
                means = [c.score_sum / c.count for c in used]
                grand = sum(means) / len(means)
                spread = sum((m - grand) ** 2 for m in means) / (len(means) - 1)
                noise = sum(var_b / c.count for c in used) / len(used)
                estimate, weight = max(spread - noise, 0.0), len(used) - 1.0
            if len(self._chunk_cache) > CACHE_SIZE:
                self._chunk_cache.clear()
            self._chunk_cache[key] = (estimate, weight, 0)
        estimate, weight, _ = self._chunk_cache[key]
        prior_weight = SENTIMENT_DRIFT_PRIOR_WEIGHT
        return (prior_weight * SENTIMENT_DRIFT_PRIOR ** 2 + weight * estimate) / (prior_weight + weight)

    def _sentiment_store(self, series: str) -> str:
        # channel and theme buckets are shared with volume counting; ``all`` has its own.
        return (self.SENTIMENT_PREFIX if series == ALL_SERIES else self.VOLUME_PREFIX) + series


def _more_significant(a: Signal, b: Signal) -> bool:
    if a.firing != b.firing:
        return a.firing
    pa = a.p_value if a.p_value is not None else 1.0
    pb = b.p_value if b.p_value is not None else 1.0
    return pa < pb
