"""The weekly digest as a Prefect flow (a temporary local Prefect server, ~7 s)."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np

from consumers.store.feedback_store import FeedbackStore
from pipelines.flows.digest import last_complete_week, weekly_digest_flow
from tests.themes.factories import enriched


def test_flow_writes_the_digest_and_returns_the_announcement(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = FeedbackStore.from_url(url)
    rng = np.random.default_rng(1)
    base = rng.normal(size=384)
    vectors = [base + rng.normal(scale=0.05, size=384) for _ in range(5)]
    store.upsert_enriched(
        (enriched(f"f{i}", when=datetime(2026, 11, 18, i, tzinfo=timezone.utc)), v / np.linalg.norm(v)) for i, v in enumerate(vectors)
    )
    store.close()
    monkeypatch.setenv("FEEDBACK_MINER_STORE__URL", url)
    monkeypatch.setenv("FEEDBACK_MINER_ENRICHMENT__DIGEST_DIR", str(tmp_path / "out"))
    monkeypatch.delenv("FEEDBACK_MINER_KAFKA__BOOTSTRAP_SERVERS", raising=False)

    result = weekly_digest_flow(week="2026-W47", announce=False)

    assert result["week"] == "2026-W47" and result["feedback_count"] == 5 and result["theme_count"] == 1
    assert result["html_path"] == str(tmp_path / "out" / "digest-2026-W47.html")
    assert (tmp_path / "out" / "digest-2026-W47.md").is_file()


def test_the_default_week_is_the_last_complete_one():
    assert last_complete_week(datetime(2026, 11, 23, 6, tzinfo=timezone.utc)) == "2026-W47"
