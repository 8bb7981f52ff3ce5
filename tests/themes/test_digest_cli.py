"""``feedback-miner digest``: the command on a real store, and its errors."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
from typer.testing import CliRunner

from consumers.store.feedback_store import FeedbackStore
from pipelines.cli import app
from tests.themes.factories import enriched


def test_digest_command_writes_files_without_a_broker(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = FeedbackStore.from_url(url)
    rng = np.random.default_rng(0)
    base = rng.normal(size=384)
    rows = []
    for i in range(6):
        v = base + rng.normal(scale=0.05, size=384)
        rows.append((enriched(f"e{i}", text=f"骑手超时<script>x</script>第{i}次", when=datetime(2026, 11, 17, i, tzinfo=timezone.utc)), v / np.linalg.norm(v)))
    store.upsert_enriched(rows)
    store.close()
    monkeypatch.setenv("FEEDBACK_MINER_STORE__URL", url)
    monkeypatch.setenv("FEEDBACK_MINER_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("FEEDBACK_MINER_KAFKA__BOOTSTRAP_SERVERS", raising=False)

    result = CliRunner().invoke(app, ["digest", "--week", "2026-W47"])
    assert result.exit_code == 0, result.output
    # The store's first week: nothing to compare with, so nothing is emerging.
    assert "6 messages, 1 theme, first week, nothing to compare with" in result.output and "not announced" in result.output
    assert "first week" in result.output
    html = (tmp_path / "digests" / "digest-2026-W47.html").read_text(encoding="utf-8")
    assert "&lt;script&gt;x&lt;/script&gt;" in html and "<script>" not in html
    md = (tmp_path / "digests" / "digest-2026-W47.md").read_text(encoding="utf-8")
    # The first week is said once, in one section, and the trend starts with it (the store holds nothing earlier).
    assert html.count("no previous week to compare with") == 1 and md.count("no previous week to compare with") == 1
    assert "Emerging themes</h2>" not in html and "## Fading themes" not in md
    assert "2026-W46" not in html and "2026-W46" not in md and "| 2026-W47 | 6 | 0 | 0 |" in md

    listed = CliRunner().invoke(app, ["themes", "list", "--week", "2026-W47"])
    assert listed.exit_code == 0 and "first_week" in listed.output and "骑手" in listed.output


def test_digest_command_rejects_a_bad_week(tmp_path, monkeypatch):
    monkeypatch.setenv("FEEDBACK_MINER_STORE__URL", f"sqlite:///{tmp_path / 's.db'}")
    result = CliRunner().invoke(app, ["digest", "--week", "2026-47"])
    assert result.exit_code == 2
    assert "not an ISO week like 2026-W47" in result.output
