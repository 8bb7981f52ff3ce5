"""Event streams, publishing, and running stages in threads for the fault tests.

Texts are real Chinese reviews from the repository's held-out issue-type set
(data/issue_type/real_heldout.jsonl); escalation texts are written to hit the
alerter's rules (consumers/alerter/rules.yaml).
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path

import pytest

from consumers.kafka_io import make_producer, read_topic
from consumers.runtime import RunStats, StreamRuntime
from topics.schemas import (
    Alert,
    Channel,
    Customer,
    EnrichedFeedback,
    Event,
    IssueType,
    IssueTypeScore,
    NormalizedFeedback,
    Sentiment,
    SentimentLabel,
)
from topics.serde import decode, encode, encode_key, make_headers
from topics.settings import Settings

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
REAL_TEXTS = REPO / "data" / "issue_type" / "real_heldout.jsonl"

# Event time of the alerter streams, and the alerter's processing clock (after every event).
T0 = datetime(2026, 11, 2, 0, 0, tzinfo=timezone.utc)
NOW = T0 + timedelta(days=30)

ESCALATIONS = [
    "充电宝充电的时候突然起火了，床单都烧了一块，太吓人了",
    "热水器漏电，我家孩子洗澡的时候被电了一下，已经送医检查",
    "吃了你们家的外卖全家食物中毒，现在还在医院急诊",
    "客服一直推诿不给退款，我已经找了律师，准备起诉你们",
    "三次投诉都没人处理，我要去12315和消费者协会投诉",
    "再不解决我就联系媒体曝光你们，让大家都看看",
    "新买的电动车电池冒烟了，差点爆炸",
    "快递把我的包裹弄丢了还不赔，我要上热搜发微博曝光",
]
VIP_COMPLAINTS = [
    "作为年费会员，这种服务态度实在太让人失望了，再也不会续费",
    "钻石会员等了一个小时客服都没人理，简直糟糕透顶",
    "会员专享的售后形同虚设，退款拖了半个月还没到账，非常愤怒",
]
_STEADY_RATES = {  # per hour
    IssueType.logistics: 16.0, IssueType.product_quality: 14.0, IssueType.price_billing: 9.0,
    IssueType.service_attitude: 8.0, IssueType.refund_aftersales: 8.0, IssueType.technical: 7.0,
    IssueType.account_privacy: 2.0, IssueType.policy_contract: 1.5, IssueType.suggestion: 4.0,
    IssueType.praise: 11.0, IssueType.other: 4.0,
}


@lru_cache(maxsize=1)
def real_texts() -> dict[str, list[str]]:
    """Real short reviews (8–60 characters) by issue-type label, in file order, without repeats."""
    by_label: dict[str, list[str]] = {}
    seen: set[str] = set()
    with open(REAL_TEXTS, encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            text = row["text"].strip()
            if 8 <= len(text) <= 60 and text not in seen:
                seen.add(text)
                by_label.setdefault(row["label"], []).append(text)
    assert sum(map(len, by_label.values())) > 500, f"too few real texts in {REAL_TEXTS}"
    return by_label


def _all_texts() -> list[str]:
    return [t for texts in real_texts().values() for t in texts]


# --- normalized (enricher input) ---------------------------------------------------


def normalized_events(n: int, prefix: str) -> list[NormalizedFeedback]:
    """``n`` normalized events with real texts (repeated when ``n`` exceeds them), new event ids."""
    texts = _all_texts()
    return [
        NormalizedFeedback(
            event_id=f"{prefix}-{i:05d}",
            channel=(Channel.app, Channel.social, Channel.email)[i % 3],
            source="fault-test",
            received_at=datetime(2026, 11, 16, 9, tzinfo=timezone.utc) + timedelta(seconds=37 * i),
            customer=Customer(id=f"c{i % 97}"),
            text=texts[i % len(texts)],
        )
        for i in range(n)
    ]


# --- raw (normalizer input) --------------------------------------------------------


def raw_events(n: int, prefix: str, start: int = 0) -> list[dict]:
    texts = _all_texts()
    return [
        {
            "event_id": f"{prefix}-{i:05d}",
            "channel": "app",
            "source": "app-store-connector",
            "received_at": (datetime(2026, 11, 16, 9, tzinfo=timezone.utc) + timedelta(minutes=i)).isoformat(),
            "customer": {"id": f"c{i % 13}"},
            "payload": {"text": texts[(7 * i) % len(texts)], "rating": 1 + i % 5},
        }
        for i in range(start, start + n)
    ]


# --- enriched (alerter input) ------------------------------------------------------


def enriched_event(
    event_id: str, at: datetime, text: str, issue: IssueType, score: float, customer_id: str,
    tier: str | None = None, channel: Channel = Channel.app, theme_id: str | None = None,
) -> EnrichedFeedback:
    label = SentimentLabel.negative if score < -0.1 else (SentimentLabel.positive if score > 0.1 else SentimentLabel.neutral)
    return EnrichedFeedback(
        event_id=event_id, channel=channel, source="fault-test", received_at=at,
        customer=Customer(id=customer_id, tier=tier), text=text,
        primary_issue=issue, issue_types=[issue],
        issue_scores=[IssueTypeScore(label=t, probability=0.9 if t == issue else 0.01) for t in IssueType],
        sentiment=Sentiment(label=label, score=score), theme_id=theme_id, model_version="fault-test",
        normalized_at=NOW, enriched_at=NOW,
    )


def _score(issue: IssueType, rng: random.Random) -> float:
    if issue == IssueType.praise:
        return round(min(1.0, rng.gauss(0.7, 0.15)), 3)
    if issue in (IssueType.suggestion, IssueType.other):
        return round(max(-1.0, min(1.0, rng.gauss(0.0, 0.15))), 3)
    return round(max(-1.0, min(0.2, rng.gauss(-0.45, 0.2))), 3)


def alert_stream(hours: float = 8.0, seed: int = 22, prefix: str = "a") -> list[EnrichedFeedback]:
    """A steady stream over ``hours`` with a logistics spike at hour 5, escalation messages (some
    customers several times, so alerts get updates) and strongly negative VIPs; ordered by event time."""
    rng = random.Random(seed)
    texts = real_texts()
    channels, weights = zip(*{Channel.app: 0.5, Channel.social: 0.3, Channel.email: 0.2}.items())
    items: list[tuple[datetime, str, dict]] = []

    def poisson(start: datetime, duration_s: float, rate_per_hour: float) -> Iterable[datetime]:
        t = 0.0
        while True:
            t += rng.expovariate(rate_per_hour / 3600)
            if t >= duration_s:
                return
            yield start + timedelta(seconds=t)

    for issue, rate in _STEADY_RATES.items():
        pool = texts.get(issue.value) or texts["other"]
        for at in poisson(T0, hours * 3600, rate):
            items.append((at, "s", dict(text=rng.choice(pool), issue=issue, score=_score(issue, rng),
                                        customer_id=f"c{rng.randrange(100_000)}", channel=rng.choices(channels, weights)[0],
                                        theme_id=f"t-{issue.value}-{rng.randrange(3)}")))
    for at in poisson(T0 + timedelta(hours=5), 40 * 60, 80.0):
        items.append((at, "spike", dict(text="今天收到的快递外箱全压烂了，配送员还说不关他的事", issue=IssueType.logistics,
                                        score=round(rng.uniform(-0.9, -0.5), 3), customer_id=f"c{rng.randrange(100_000)}",
                                        channel=Channel.app, theme_id="t-spike")))
    # Escalations: 12 customers, each 1–3 messages minutes apart (a second one updates the alert).
    for k in range(12):
        first = T0 + timedelta(minutes=rng.uniform(20, hours * 60 - 30))
        for m in range(1 + k % 3):
            items.append((first + timedelta(minutes=4 * m), "esc", dict(
                text=ESCALATIONS[(k + m) % len(ESCALATIONS)], issue=IssueType.product_quality, score=-0.9,
                customer_id=f"esc-{k}", channel=channels[k % 3])))
    for k in range(6):
        items.append((T0 + timedelta(minutes=rng.uniform(10, hours * 60 - 10)), "vip", dict(
            text=VIP_COMPLAINTS[k % len(VIP_COMPLAINTS)], issue=IssueType.service_attitude, score=-0.85,
            customer_id=f"vip-{k}", tier="vip", channel=Channel.email)))
    items.sort(key=lambda item: item[0])
    return [enriched_event(f"{prefix}-{kind}-{n:05d}", at, **fields) for n, (at, kind, fields) in enumerate(items)]


# --- the broker ---------------------------------------------------------------------


def _send_all(settings: Settings, topic: str, records: Iterable[tuple[bytes | None, bytes, list, int | None]]) -> int:
    """Produce (key, value, headers, partition) records and wait for every acknowledgement; returns how many."""
    producer = make_producer(settings, linger_ms=20)
    try:
        futures = [
            producer.send(settings.topic(topic), key=key, value=value, headers=headers, partition=partition)
            for key, value, headers, partition in records
        ]
        producer.flush(timeout=60)
        for future in futures:
            future.get(timeout=60)
        return len(futures)
    finally:
        producer.close(timeout=10)


def publish(settings: Settings, topic: str, events: Iterable[Event], partition: int | None = None) -> int:
    """Produce events (key: the customer id); ``partition`` pins them to one partition, keeping their order."""
    return _send_all(settings, topic, ((encode_key(e.key()), encode(e), make_headers(e), partition) for e in events))


def publish_raw(settings: Settings, topic: str, events: Iterable[dict]) -> int:
    return _send_all(settings, topic, (
        (e["customer"]["id"].encode(), json.dumps(e, ensure_ascii=False).encode("utf-8"), [], None) for e in events
    ))


def read_events(settings: Settings, topic: str, model: type[Event]) -> list:
    return [decode(model, r.value, list(r.headers or [])) for r in read_topic(settings, topic, timeout_s=60)]


def alert_facts(alerts: list[Alert]) -> list[tuple]:
    """What ops see of each alert event, independent of alert ids, emission clock and topic order
    (the alerts topic is keyed by alert, so reading it back interleaves its partitions): sorted
    (kind, key, first seen, revision, status, priority, counts, last seen, sample event ids)."""
    return sorted(
        (a.kind.value, a.key, a.first_seen.isoformat(), a.revision, a.status.value, a.priority.value,
         a.count, a.total_count, a.last_seen.isoformat(), tuple(s.event_id for s in a.samples))
        for a in alerts
    )


def first_publications(alerts: list[Alert]) -> list[Alert]:
    """Each alert event (alert id, revision) once, in the order first seen: at-least-once delivery
    may publish an event again (the same id, revision and content) when its acknowledgement was lost."""
    seen: set[tuple[str, int]] = set()
    kept = []
    for a in alerts:
        if (a.alert_id, a.revision) not in seen:
            seen.add((a.alert_id, a.revision))
            kept.append(a)
    return kept


# --- stages in threads -------------------------------------------------------------


def fault_settings(base: Settings, store_url: str | None = None, **runtime: object) -> Settings:
    """``base`` with a fast retry backoff and a short Kafka request timeout (and another store)."""
    update: dict = {
        "kafka": base.kafka.model_copy(update={"request_timeout_ms": 5000}),
        "runtime": base.runtime.model_copy(update={
            "batch_size": 64, "batch_timeout_ms": 200, "retry_backoff_ms": 100, "retry_backoff_max_ms": 1000, **runtime,
        }),
    }
    if store_url is not None:
        update["store"] = base.store.model_copy(update={"url": store_url})
    return base.model_copy(update=update)


class StageThread:
    """A ``StreamRuntime`` running in a daemon thread; ``stop()`` joins it and re-raises its error."""

    def __init__(self, runtime: StreamRuntime):
        self.runtime = runtime
        self.error: BaseException | None = None
        self.stats: RunStats | None = None
        self.thread = threading.Thread(target=self._run, name=f"stage-{runtime.stage.name}", daemon=True)

    def _run(self) -> None:
        try:
            self.stats = self.runtime.run()
        except BaseException as exc:  # noqa: BLE001 - reported by check()/stop()
            log.exception("stage %s died", self.runtime.stage.name)
            self.error = exc

    def start(self) -> StageThread:
        self.thread.start()
        return self

    def check(self) -> None:
        """Fail at once when the runtime died (it must ride out every fault)."""
        if self.error is not None:
            raise AssertionError(f"stage {self.runtime.stage.name} died: {self.error!r}") from self.error
        if not self.thread.is_alive():
            raise AssertionError(f"stage {self.runtime.stage.name} stopped by itself (stats {self.runtime.stats})")

    def stop(self, timeout_s: float = 60) -> RunStats:
        self.runtime.stop()
        self.thread.join(timeout_s)
        if self.thread.is_alive():
            raise AssertionError(f"stage {self.runtime.stage.name} did not stop within {timeout_s}s")
        if self.error is not None:
            raise AssertionError(f"stage {self.runtime.stage.name} died: {self.error!r}") from self.error
        return self.runtime.stats


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str, stages: Iterable[StageThread] = (),
             interval_s: float = 0.02) -> float:
    """Poll ``condition`` until true; fail after ``timeout_s`` or as soon as a stage died. Returns seconds waited."""
    stages = list(stages)
    started = time.monotonic()
    while not condition():
        for stage in stages:
            stage.check()
        if time.monotonic() - started > timeout_s:
            details = "; ".join(f"{s.runtime.stage.name}: {s.runtime.stats}, paused={s.runtime.paused}" for s in stages)
            pytest.fail(f"timed out after {timeout_s}s waiting for {what} ({details})")
        time.sleep(interval_s)
    return time.monotonic() - started
