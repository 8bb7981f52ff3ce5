"""Normalized events, their Kafka messages and an enricher stage over a store (enricher and digest tests)."""

from __future__ import annotations

from datetime import datetime, timezone

from consumers.enricher import EnricherStage
from consumers.stage import InMessage
from consumers.store.feedback_store import FeedbackStore
from consumers.themes.live import LiveThemes
from topics.schemas import Customer, NormalizedFeedback
from topics.serde import encode, make_headers
from topics.settings import Settings
from topics.specs import NORMALIZED


def event(event_id: str, text: str) -> NormalizedFeedback:
    return NormalizedFeedback(
        event_id=event_id, channel="app", source="test", received_at=datetime(2026, 11, 16, 9, tzinfo=timezone.utc),
        customer=Customer(id="c1"), text=text,
    )


def message(ev: NormalizedFeedback, offset: int) -> InMessage:
    return InMessage(NORMALIZED, 0, offset, ev.key().encode(), encode(ev), make_headers(ev, trace_id=f"trace-{offset}"))


def enricher(store: FeedbackStore, model) -> EnricherStage:
    live = Settings().enrichment.live
    return EnricherStage(model, store, LiveThemes(store.load_themes(), live.threshold_curve, live.promote_at))
