"""The README's main job, end to end on its embedded defaults (own broker, SQLite in a temp dir)."""

import os
import subprocess
import sys
from collections import Counter

import pytest

from pipelines.main_job import run_main_job, sample_path
from topics.settings import Settings


@pytest.fixture
def embedded_settings(tmp_path, monkeypatch) -> Settings:
    monkeypatch.delenv("FEEDBACK_MINER_KAFKA__BOOTSTRAP_SERVERS", raising=False)
    return Settings(store={"url": f"sqlite:///{tmp_path / 'store.db'}"}, data_dir=tmp_path)


def test_every_published_event_comes_out_normalized_or_dead_lettered(embedded_settings):
    report = run_main_job(embedded_settings, malformed_file=sample_path("malformed.jsonl"), timeout_s=600)
    assert report.drained
    assert not report.published.rejected
    normalized = {e["event_id"] for e in report.topics["feedback.normalized"]}
    dead = report.topics["feedback.deadletter"]
    dead_ids = {d["event_id"] for d in dead if d.get("event_id")}
    assert set(report.published.accepted) <= normalized | dead_ids  # never nowhere
    # The bundled malformed messages each land in the dead-letter topic with their reason.
    reasons = Counter(d["reason"] for d in dead if d["stage"] == "normalizer" and d["event_id"] is None)
    assert reasons == {"not_json": 1, "not_utf8": 1, "schema_invalid": 3, "too_large": 1}
    stats = report.stage_stats["normalizer"]
    assert stats["processed"] == len(report.published.accepted) + report.malformed_sent


def test_the_run_command_prints_the_results(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDBACK_MINER_")}
    env.update(FEEDBACK_MINER_DATA_DIR=str(tmp_path), FEEDBACK_MINER_STORE__URL=f"sqlite:///{tmp_path / 'store.db'}")
    result = subprocess.run([sys.executable, "-m", "pipelines", "run"], env=env, capture_output=True, timeout=900)
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    assert "feedback.normalized" in out and "feedback.deadletter" in out
    assert "dead-letter reasons: not_json=1, not_utf8=1, schema_invalid=3, too_large=1" in out
