"""The feedback/theme repository on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest

from consumers.store import schema_version
from consumers.store.feedback_store import FeedbackStore
from consumers.themes.types import Theme, WeeklyTheme
from tests.themes.factories import enriched
from topics.schemas import EnrichedFeedback


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=384).astype(np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture
def store(store_url):
    s = FeedbackStore.from_url(store_url)
    yield s
    s.close()


def test_upsert_by_event_id_never_makes_a_second_row(store):
    store.upsert_enriched([(enriched("e1"), unit(1))])
    store.upsert_enriched([(enriched("e1", text="骑手超时两个小时", theme_id="th-b"), unit(2)), (enriched("e2"), unit(3))])
    store.upsert_enriched([(enriched("e2"), unit(3)), (enriched("e2"), unit(3))])
    assert store.count_enriched() == 2
    row = store.get_enriched("e1")
    assert row["text"] == "骑手超时两个小时" and row["theme_id"] == "th-b"  # the redelivery's content wins
    assert row["issue_types"] == ["logistics", "service_attitude"] and row["customer_tier"] == "vip"
    assert row["received_at"] == datetime(2026, 11, 16, 1, tzinfo=timezone.utc) and row["week"] == "2026-W47"


def test_embeddings_are_float16_bytes(store):
    store.upsert_enriched([(enriched("e1"), unit(1))])
    with store.engine.connect() as conn:
        blob = conn.exec_driver_sql("SELECT embedding FROM enriched_feedback").scalar_one()
    assert len(blob) == 384 * 2
    back = store.get_enriched("e1")["embedding"]
    assert np.abs(back - unit(1)).max() < 1e-3
    week = store.week_feedback("2026-W47")
    assert week.embeddings.shape == (1, 384) and week.event_ids == ["e1"] and week.live_theme_ids == ["th-a"]


def test_themes_and_week_snapshots_survive_reopening(store_url):
    first = FeedbackStore.from_url(store_url)
    centroid = unit(5) * 0.93
    first.save_themes([Theme("th-a", centroid, 4, "active", keywords=["骑手"])])
    snap = WeeklyTheme("th-a", "2026-W47", 4, 2, centroid, ["骑手", "超时"], ["骑手超时"], {"negative": 4}, {"logistics": 4}, {"app": 4}, True, False, "emerging")
    first.save_week("2026-W47", [snap], {"e1": "th-a"})
    first.save_week("2026-W47", [snap], {"e1": "th-a", "e2": "th-a"})  # a rebuild replaces the week
    first.close()

    again = FeedbackStore.from_url(store_url)  # a restart: migrations already applied, nothing lost
    assert schema_version(again.engine) >= 1
    (theme,) = again.load_themes()
    assert theme.theme_id == "th-a" and theme.size == 4 and theme.status == "active" and theme.keywords == ["骑手"]
    assert np.array_equal(theme.centroid, centroid)  # float32: incremental updates stay exact
    (week,) = again.load_week("2026-W47")
    assert (week.size, week.previous_size, week.emerging, week.status, week.quotes) == (4, 2, True, "emerging", ["骑手超时"])
    assert again.week_members("2026-W47") == {"e1": "th-a", "e2": "th-a"}
    assert again.load_week("2026-W46") == []
    again.close()


def test_week_counts_and_weeks_of(store):
    store.upsert_enriched([(enriched("e1"), unit(1)), (enriched("e2", when=datetime(2026, 11, 10, tzinfo=timezone.utc)), unit(2))])
    counts = store.week_counts(["2026-W46", "2026-W47", "2026-W48"])
    assert counts["2026-W47"]["sentiment"] == {"negative": 1} and counts["2026-W46"]["issue"] == {"logistics": 1}
    assert counts["2026-W48"]["channel"] == {}
    assert store.weeks_of(["e1", "e2", "missing"]) == ["2026-W46", "2026-W47"]


def test_stale_candidates_are_dropped_active_themes_kept(store):
    old = datetime(2026, 10, 1, tzinfo=timezone.utc)
    store.save_themes([
        Theme("th-old-candidate", unit(1), 1, "candidate", created_at=old, updated_at=old),
        Theme("th-old-active", unit(2), 9, "active", created_at=old, updated_at=old),
        Theme("th-fresh-candidate", unit(3), 1, "candidate"),
    ])
    assert store.drop_stale_candidates(datetime(2026, 11, 1, tzinfo=timezone.utc)) == 1
    assert sorted(t.theme_id for t in store.load_themes()) == ["th-fresh-candidate", "th-old-active"]


def test_the_theme_embedding_is_stored_and_weekly_themes_read_it(store):
    store.upsert_enriched([(enriched("e1"), unit(1), unit(7)), (enriched("e2"), unit(2))])
    row = store.get_enriched("e1")
    assert np.abs(row["theme_embedding"] - unit(7)).max() < 1e-3 and np.abs(row["embedding"] - unit(1)).max() < 1e-3
    assert store.get_enriched("e2")["theme_embedding"] is None
    week = store.week_feedback("2026-W47")
    got = dict(zip(week.event_ids, week.embeddings))
    # The theme embedding where there is one; a row stored without one (before m0002) gives its embedding.
    assert np.abs(got["e1"] - unit(7)).max() < 1e-3 and np.abs(got["e2"] - unit(2)).max() < 1e-3


def test_aspect_sentiments_are_kept_and_reach_the_week(store):
    mixed = EnrichedFeedback.model_validate({**enriched("e1", text="骑手很快，但是态度很差").model_dump(), "aspect_sentiments": [
        {"issue_type": "logistics", "sentiment": "positive"}, {"issue_type": "service_attitude", "sentiment": "negative"}]})
    store.upsert_enriched([(mixed, unit(1)), (enriched("e2"), unit(2))])
    assert store.get_enriched("e1")["aspect_sentiments"] == {"logistics": "positive", "service_attitude": "negative"}
    week = store.week_feedback("2026-W47")
    assert dict(zip(week.event_ids, week.aspect_sentiments)) == {
        "e1": {"logistics": "positive", "service_attitude": "negative"}, "e2": {}}
