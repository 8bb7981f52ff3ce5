"""Enriched feedback rows for the store, digest and flow tests."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from topics.schemas import Customer, EnrichedFeedback, IssueTypeScore, Sentiment


def enriched(event_id: str, text: str = "骑手超时一个小时", theme_id: str | None = "th-a", when=None) -> EnrichedFeedback:
    return EnrichedFeedback(
        event_id=event_id, channel="social", source="weibo", customer=Customer(id="c9", tier="vip"), text=text,
        received_at=when or datetime(2026, 11, 16, 9, tzinfo=timezone(timedelta(hours=8))),
        primary_issue="logistics", issue_types=["logistics", "service_attitude"],
        issue_scores=[IssueTypeScore(label="logistics", probability=0.9), IssueTypeScore(label="service_attitude", probability=0.6)],
        sentiment=Sentiment(label="negative", score=-0.8), theme_id=theme_id, model_version="m1",
    )
