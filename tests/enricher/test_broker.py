"""The enricher in the real stream runtime on the real broker: normalized in, enriched + store + digest out."""

from __future__ import annotations

import pytest

from consumers.kafka_io import make_producer, read_topic, send
from consumers.runtime import StreamRuntime
from consumers.store.feedback_store import FeedbackStore
from pipelines.digest.build import digests_for_events, kafka_announcer
from pipelines.enrichment import build_enricher
from tests.themes.synthetic import WEEK2, WEEK2_PLAN, week_events
from topics.schemas import DeadLetter, DigestAnnouncement, EnrichedFeedback
from topics.serde import decode
from topics.specs import DEADLETTER, DIGESTS, ENRICHED, NORMALIZED

pytestmark = [pytest.mark.broker, pytest.mark.model]


def test_stream_to_store_to_digest_announcement(kafka_settings, feedback_model):
    events = week_events(WEEK2, WEEK2_PLAN, 3, "live")[:30]
    producer = make_producer(kafka_settings)
    for e in events:
        send(producer, kafka_settings.topic(NORMALIZED), e, e.key())
    send(producer, kafka_settings.topic(NORMALIZED), events[0], events[0].key())  # a redelivery
    producer.send(kafka_settings.topic(NORMALIZED), key=b"k", value=b"\xff not json")
    producer.flush()
    producer.close()

    stage = build_enricher(kafka_settings, model=feedback_model)
    stats = StreamRuntime(stage, kafka_settings).run(max_messages=32, idle_exit_s=15)
    assert (stats.processed, stats.produced, stats.dead_lettered) == (32, 31, 1)

    enriched = [decode(EnrichedFeedback, r.value) for r in read_topic(kafka_settings, ENRICHED)]
    assert sorted({e.event_id for e in enriched}) == sorted(e.event_id for e in events)
    assert all(e.theme_id and e.model_version == feedback_model.version for e in enriched)
    (dead,) = [decode(DeadLetter, r.value) for r in read_topic(kafka_settings, DEADLETTER)]
    assert (dead.stage, dead.reason.value, dead.original_bytes()) == ("enricher", "not_utf8", b"\xff not json")

    store = FeedbackStore.from_url(kafka_settings.store.url)
    assert store.count_enriched() == 30
    store.close()
    (outcome,) = digests_for_events(kafka_settings, [e.event_id for e in events], kafka_announcer(kafka_settings))
    assert outcome.digest.week == "2026-W47" and outcome.html_path.is_file()
    (announced,) = [decode(DigestAnnouncement, r.value) for r in read_topic(kafka_settings, DIGESTS)]
    assert announced.week == "2026-W47" and announced.html_path == str(outcome.html_path)
    assert announced.feedback_count == 30 and announced.theme_count == len(outcome.digest.themes)
