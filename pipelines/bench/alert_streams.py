"""Deterministic enriched-feedback streams for the alert tests and benchmark.

A steady stream is a Poisson process per issue type (rates per hour) spread
over channels; a spike adds a second Poisson process for one issue type, theme
and channel from a known onset. The seed fixes everything, so a stream is
identical run to run.

Background texts are either the short written complaints below (the tests:
no data, no model) or real reviews and posts from the shared data sets
(``RealTexts``, the benchmark): each one carries what the production model
predicts for it (issue types, their probabilities, sentiment), cached on disk,
and the issue-type mix of the stream is the model's mix over those texts.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from topics.schemas import (
    AspectSentiment,
    Channel,
    Customer,
    EnrichedFeedback,
    IssueType,
    IssueTypeScore,
    Sentiment,
    SentimentLabel,
)

TEXTS: dict[IssueType, list[str]] = {
    IssueType.logistics: ["快递三天了还没到，物流信息一直不更新", "包裹被放在门口丢了，快递员不接电话", "外卖送了一个半小时，饭都凉了", "物流太慢了，说好次日达结果一周"],
    IssueType.product_quality: ["收到的杯子有裂纹，质量太差", "衣服洗一次就掉色了", "水果一半是烂的，不新鲜", "和描述的完全不一样，做工粗糙"],
    IssueType.price_billing: ["同样的东西比别家贵了五十块", "优惠券用不了，结算价格不对", "多扣了我一笔钱，账单对不上", "发票开错了，金额也不对"],
    IssueType.service_attitude: ["客服态度很差，问三次都不回", "电话排队半小时，转了三个人没解决", "店员爱答不理，很不专业"],
    IssueType.refund_aftersales: ["申请退款两周了还没到账", "退货寄回去了一直不处理", "维修承诺三天结果拖了一个月"],
    IssueType.technical: ["APP 一打开就闪退", "登录一直提示验证码错误", "支付的时候卡住了，页面报错"],
    IssueType.account_privacy: ["账号被盗了，有陌生设备登录", "刚下单就接到推销电话，信息泄露了"],
    IssueType.policy_contract: ["会员自动续费没有提前通知", "合同条款和销售说的不一样"],
    IssueType.suggestion: ["希望能增加夜间模式", "建议支持按价格排序"],
    IssueType.praise: ["快递很快，包装也很好，点赞", "客服小姐姐很耐心，谢谢"],
    IssueType.other: ["请问你们周末营业吗", "想了解一下新品什么时候上"],
}

DEFAULT_RATES: dict[IssueType, float] = {
    IssueType.logistics: 12.0, IssueType.product_quality: 10.0, IssueType.price_billing: 6.0,
    IssueType.service_attitude: 5.0, IssueType.refund_aftersales: 6.0, IssueType.technical: 5.0,
    IssueType.account_privacy: 1.5, IssueType.policy_contract: 1.0, IssueType.suggestion: 3.0,
    IssueType.praise: 8.0, IssueType.other: 3.0,
}
CHANNEL_WEIGHTS = {Channel.app: 0.5, Channel.social: 0.3, Channel.email: 0.2}
REAL_SOURCES = ("online_shopping_9_cats.csv", "waimai_10k.csv", "chnsenticorp_train.csv", "weibo_emotion_virus.jsonl")


@dataclass(frozen=True)
class RealText:
    """A real text with the production model's verdict on it."""

    text: str
    source: str
    primary_issue: IssueType
    issue_types: tuple[IssueType, ...]
    issue_probs: dict[str, float]
    sentiment: SentimentLabel
    score: float
    aspects: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RealTexts:
    """Real texts by the model's primary issue type; ``describe`` says where they came from."""

    by_issue: dict[IssueType, list[RealText]]
    model_version: str
    cache_file: str

    def rates(self, total_per_hour: float) -> dict[IssueType, float]:
        """Rates per issue type for a stream of ``total_per_hour`` messages with the texts' mix."""
        n = sum(len(v) for v in self.by_issue.values())
        return {issue: total_per_hour * len(texts) / n for issue, texts in self.by_issue.items() if texts}

    def describe(self) -> dict:
        texts = [t for v in self.by_issue.values() for t in v]
        return {
            "texts": len(texts), "by_source": dict(sorted(Counter(t.source for t in texts).items())),
            "by_primary_issue": {k.value: len(v) for k, v in sorted(self.by_issue.items(), key=lambda kv: -len(kv[1]))},
            "by_sentiment": dict(sorted(Counter(t.sentiment.value for t in texts).items())),
            "labels_from": f"production model {self.model_version} (cached: {self.cache_file})",
        }


def _read_real_texts(data_dir: Path, limit: int, seed: int) -> list[tuple[str, str]]:
    """Up to ``limit`` distinct (text, source file) from the shared data sets, a seeded sample of each file
    in proportion to its size (6-200 characters, as the other benchmarks read them)."""
    from pipelines.bench.themes import _load_sources

    missing = [name for name in REAL_SOURCES if not (data_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"the alert benchmark's streams are real reviews from {data_dir} (Settings.shared_data, "
            f"FEEDBACK_MINER_SHARED_DATA), which lacks {', '.join(missing)}")
    rows = {text: source for cat in _load_sources(data_dir).values() for text, _, source in cat}
    ordered = sorted(rows.items())
    random.Random(seed).shuffle(ordered)
    return ordered[:limit]


def load_real_texts(data_dir: Path, cache_dir: Path, predictor=None, limit: int = 3000, seed: int = 0) -> RealTexts:
    """The real texts with the production model's predictions, cached in ``cache_dir`` under a key of the
    texts and the served model's artifacts (a promoted model gets new predictions). ``predictor``: a
    loaded model (else the production model is loaded only when the cache misses)."""
    from models.feedback_model import artifacts_digest
    from models.promotion import current_artifacts
    from topics.settings import Settings

    texts = _read_real_texts(Path(data_dir), limit, seed)
    if predictor is not None:
        identity = predictor.version
    else:
        art = current_artifacts(Path(Settings().promotion.registry_dir))
        identity = f"{art}:{artifacts_digest(art)[:16]}"
    key = hashlib.sha256(json.dumps([identity, texts], ensure_ascii=False).encode()).hexdigest()[:16]
    cache = Path(cache_dir) / f"alert-texts-{key}.json"
    if cache.is_file():
        rows = json.loads(cache.read_text(encoding="utf-8"))
    else:
        if predictor is None:
            from pipelines.enrichment import production_model

            predictor = production_model(Settings())
        preds = predictor.predict([t for t, _ in texts])
        rows = {"model_version": predictor.version, "texts": [
            {"text": t, "source": src, "primary_issue": p.primary_issue, "issue_labels": list(p.issue_labels),
             "issue_probs": {k: round(float(v), 4) for k, v in p.issue_probs.items()}, "sentiment": p.sentiment,
             "score": round(float(p.sentiment_score), 4), "aspects": dict(p.aspect_sentiments)}
            for (t, src), p in zip(texts, preds)]}
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        tmp.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
        tmp.replace(cache)
    by_issue: dict[IssueType, list[RealText]] = {}
    for r in rows["texts"]:
        t = RealText(r["text"], r["source"], IssueType(r["primary_issue"]), tuple(IssueType(x) for x in r["issue_labels"]),
                     r["issue_probs"], SentimentLabel(r["sentiment"]), max(-1.0, min(1.0, r["score"])), r.get("aspects", {}))
        by_issue.setdefault(t.primary_issue, []).append(t)
    return RealTexts(by_issue, rows["model_version"], str(cache))


@dataclass(frozen=True)
class SpikeSpec:
    issue_type: IssueType
    onset: timedelta
    duration: timedelta
    rate_per_hour: float
    channel: Channel = Channel.app
    theme_id: str = "t-spike"
    text: str = "今天收到的充电器外壳发烫变形，插上就跳闸"
    # A multi-signal incident: this share of its messages lands on ``channel`` (the rest on the other
    # channels), and this share is classified as ``other_issue`` instead (classifiers disagree).
    channel_share: float = 1.0
    other_issue: IssueType | None = None
    other_issue_share: float = 0.0
    # The incident messages' sentiment score (None: the issue type's usual distribution).
    score: float | None = None


@dataclass(frozen=True)
class StreamSpec:
    start: datetime
    duration: timedelta
    rates_per_hour: dict[IssueType, float] = field(default_factory=lambda: dict(DEFAULT_RATES))
    spike: SpikeSpec | None = None
    seed: int = 7
    vip_share: float = 0.03
    # Daily cycle: the rate swings by ± this share of itself (lowest around 04:00, highest around 16:00).
    daily_amplitude: float = 0.0
    # Overdispersion: each issue type's rate is multiplied, hour by hour, by a Gamma(1/b, b) factor (mean 1, variance b).
    burstiness: float = 0.0
    # New themes during steady traffic: every issue type's themes are replaced by new ids this often
    # (staggered per issue type), as the enricher's live clustering births candidate themes.
    theme_turnover: timedelta | None = None
    # Background texts: real ones with the model's labels and sentiment (None: the written ones above).
    texts: RealTexts | None = None


def _sentiment(issue: IssueType, rng: random.Random) -> Sentiment:
    if issue == IssueType.praise:
        return Sentiment(label=SentimentLabel.positive, score=round(min(1.0, rng.gauss(0.7, 0.15)), 3))
    if issue in (IssueType.suggestion, IssueType.other):
        return Sentiment(label=SentimentLabel.neutral, score=round(max(-1.0, min(1.0, rng.gauss(0.0, 0.15))), 3))
    score = round(max(-1.0, min(0.2, rng.gauss(-0.45, 0.2))), 3)
    return Sentiment(label=SentimentLabel.negative if score < -0.1 else SentimentLabel.neutral, score=score)


def make_event(
    event_id: str, at: datetime, issue: IssueType, channel: Channel, text: str, rng: random.Random,
    theme_id: str | None = None, tier: str | None = None, customer_id: str | None = None,
    sentiment: Sentiment | None = None, duplicate_of: str | None = None, real: RealText | None = None,
) -> EnrichedFeedback:
    customer = Customer(id=customer_id or f"c{rng.randrange(100_000)}", tier=tier)
    if real is not None:
        # The model's verdict on the real text, as the enricher would have published it.
        return EnrichedFeedback(
            event_id=event_id, channel=channel, source="replay", received_at=at, customer=customer, text=real.text,
            primary_issue=real.primary_issue, issue_types=list(real.issue_types),
            issue_scores=[IssueTypeScore(label=t, probability=real.issue_probs.get(t.value, 0.0)) for t in IssueType],
            sentiment=sentiment or Sentiment(label=real.sentiment, score=real.score),
            aspect_sentiments=[AspectSentiment(issue_type=IssueType(k), sentiment=SentimentLabel(v)) for k, v in real.aspects.items()],
            theme_id=theme_id, model_version="replay", duplicate_of=duplicate_of,
        )
    scores = [IssueTypeScore(label=t, probability=0.9 if t == issue else 0.01) for t in IssueType]
    return EnrichedFeedback(
        event_id=event_id, channel=channel, source="replay", received_at=at, customer=customer, text=text,
        primary_issue=issue, issue_types=[issue], issue_scores=scores,
        sentiment=sentiment or _sentiment(issue, rng), theme_id=theme_id, model_version="replay",
        duplicate_of=duplicate_of,
    )


def _poisson_times(rng: random.Random, start: datetime, duration: timedelta, rate_per_hour: float) -> list[datetime]:
    times, t = [], 0.0
    total = duration.total_seconds()
    while rate_per_hour > 0:
        t += rng.expovariate(rate_per_hour / 3600)
        if t >= total:
            break
        times.append(start + timedelta(seconds=t))
    return times


def _modulated_times(rng: random.Random, spec: StreamSpec, rate_per_hour: float) -> list[datetime]:
    """A non-homogeneous Poisson process (thinning): daily cycle and hourly bursts."""
    factors: dict[int, float] = {}

    def rate(at: datetime) -> float:
        hour = int((at - spec.start).total_seconds() // 3600)
        if spec.burstiness > 0 and hour not in factors:
            factors[hour] = rng.gammavariate(1 / spec.burstiness, spec.burstiness)
        day = math.sin(2 * math.pi * (at.hour + at.minute / 60 - 10) / 24)
        return rate_per_hour * (1 + spec.daily_amplitude * day) * factors.get(hour, 1.0)

    peak = rate_per_hour * (1 + spec.daily_amplitude) * (1 + 6 * math.sqrt(spec.burstiness))
    return [at for at in _poisson_times(rng, spec.start, spec.duration, peak) if rng.random() < rate(at) / peak]


def _background_text(spec: StreamSpec, issue: IssueType, rng: random.Random) -> str | RealText:
    if spec.texts is None:
        return rng.choice(TEXTS[issue])
    pool = spec.texts.by_issue.get(issue)
    if not pool:
        raise ValueError(f"no real text the model classifies as {issue.value}: use RealTexts.rates() for the stream's rates")
    return rng.choice(pool)


def generate(spec: StreamSpec) -> list[EnrichedFeedback]:
    """The stream, ordered by event time; spike events have ids starting with ``spike-``."""
    rng = random.Random(spec.seed)
    items: list[tuple[datetime, str, IssueType, Channel, str | RealText, str | None]] = []
    channels, weights = zip(*CHANNEL_WEIGHTS.items())
    modulated = spec.daily_amplitude > 0 or spec.burstiness > 0
    for issue, rate in spec.rates_per_hour.items():
        times = _modulated_times(rng, spec, rate) if modulated else _poisson_times(rng, spec.start, spec.duration, rate)
        for at in times:
            channel = rng.choices(channels, weights)[0]
            generation = ""
            if spec.theme_turnover is not None:
                turnover = spec.theme_turnover.total_seconds()
                offset = turnover * (list(DEFAULT_RATES).index(issue) % 7) / 7 if issue in DEFAULT_RATES else 0.0
                generation = f"g{int(((at - spec.start).total_seconds() + offset) // turnover)}-"
            theme = f"t-{issue.value}-{generation}{rng.randrange(3)}" if rng.random() < 0.7 else None
            items.append((at, "steady", issue, channel, _background_text(spec, issue, rng), theme))
    if spec.spike is not None:
        s = spec.spike
        others = [c for c in channels if c != s.channel]
        for at in _poisson_times(rng, spec.start + s.onset, s.duration, s.rate_per_hour):
            channel, issue = s.channel, s.issue_type
            if s.channel_share < 1.0 and rng.random() >= s.channel_share:
                channel = rng.choice(others)
            if s.other_issue is not None and rng.random() < s.other_issue_share:
                issue = s.other_issue
            items.append((at, "spike", issue, channel, s.text, s.theme_id))
    items.sort(key=lambda item: item[0])
    events = []
    for n, (at, kind, issue, channel, text, theme) in enumerate(items):
        tier = "vip" if rng.random() < spec.vip_share else None
        sentiment = None
        if kind == "spike" and spec.spike is not None and spec.spike.score is not None:
            sentiment = Sentiment(label=SentimentLabel.negative if spec.spike.score < -0.1 else SentimentLabel.neutral,
                                  score=round(max(-1.0, min(1.0, spec.spike.score + rng.gauss(0, 0.05))), 3))
        real = text if isinstance(text, RealText) else None
        events.append(make_event(f"{kind}-{n:06d}", at, issue, channel, real.text if real else text, rng, theme, tier,
                                 sentiment=sentiment, real=real))
    return events
