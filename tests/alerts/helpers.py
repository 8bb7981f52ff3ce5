"""Building enriched events and stage input for alerter tests."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from consumers.stage import InMessage
from pipelines.bench.alert_streams import SpikeSpec, StreamSpec, make_event
from topics.schemas import Channel, EnrichedFeedback, IssueType, Sentiment, SentimentLabel
from topics.serde import encode, make_headers

T0 = datetime(2026, 11, 2, 0, 0, tzinfo=timezone.utc)
# The processing clock of replays: after every event time used in the tests.
NOW = T0 + timedelta(days=30)
_rng = random.Random(3)
# Eight hours of steady traffic with a logistics spike from hour 5, read in batches of BATCH.
SPEC = StreamSpec(T0, timedelta(hours=8), spike=SpikeSpec(IssueType.logistics, timedelta(hours=5), timedelta(minutes=40), 70.0), seed=21)
BATCH = 50


def enriched(
    text: str = "快递三天了还没到",
    event_id: str = "e-1",
    at: datetime = T0,
    issue: IssueType = IssueType.logistics,
    channel: Channel = Channel.app,
    score: float = -0.5,
    tier: str | None = None,
    customer_id: str = "c-1",
    duplicate_of: str | None = None,
    theme_id: str | None = None,
    signals: dict | None = None,
) -> EnrichedFeedback:
    label = SentimentLabel.negative if score < -0.1 else (SentimentLabel.positive if score > 0.1 else SentimentLabel.neutral)
    event = make_event(event_id, at, issue, channel, text, _rng, theme_id, tier, customer_id,
                       Sentiment(label=label, score=score), duplicate_of)
    if signals:
        event = event.model_copy(update={"signals": signals})
    return event


def messages(events: list[EnrichedFeedback], topic: str = "feedback.enriched", partition: int = 0, first_offset: int = 0) -> list[InMessage]:
    return [
        InMessage(topic, partition, first_offset + i, event.customer.id.encode(), encode(event), make_headers(event))
        for i, event in enumerate(events)
    ]


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)
