"""The main job runs the enricher after the normalizer and builds the sample week's digest."""

from __future__ import annotations

from collections import Counter

import pytest

from consumers.store.feedback_store import FeedbackStore
from pipelines.main_job import run_main_job, sample_path
from topics.specs import DEADLETTER, DIGESTS, ENRICHED, NORMALIZED

pytestmark = [pytest.mark.broker, pytest.mark.model]


def test_main_job_enriches_and_builds_the_digest(kafka_settings, feedback_model):
    report = run_main_job(kafka_settings, malformed_file=sample_path("malformed.jsonl"), timeout_s=240)

    assert report.drained
    assert list(report.stage_stats)[:2] == ["normalizer", "enricher"]
    normalized = {e["event_id"] for e in report.topics[NORMALIZED]}
    dead = report.topics[DEADLETTER]
    assert set(report.published.accepted) <= normalized | {d["event_id"] for d in dead}  # never nowhere
    # The bundled malformed messages each land in the dead-letter topic with their reason.
    assert Counter(d["reason"] for d in dead if d["event_id"] is None) == {"not_json": 1, "not_utf8": 1, "schema_invalid": 3, "too_large": 1}
    assert report.stage_stats["normalizer"]["processed"] == len(report.published.accepted) + report.malformed_sent
    enriched = {e["event_id"]: e for e in report.topics[ENRICHED]}
    assert normalized and set(enriched) == normalized
    assert all(e["theme_id"] and len(e["issue_scores"]) == 11 for e in enriched.values())

    store = FeedbackStore.from_url(kafka_settings.store.url)
    assert store.count_enriched() == len(normalized)
    store.close()
    (digest,) = report.digests
    assert digest.digest.week == "2026-W47" and digest.digest.total == len(normalized)
    assert digest.html_path == kafka_settings.data_dir / "digests" / "digest-2026-W47.html" and digest.markdown_path.is_file()
    (announced,) = report.topics[DIGESTS]
    assert announced["week"] == "2026-W47" and announced["html_path"] == str(digest.html_path)
