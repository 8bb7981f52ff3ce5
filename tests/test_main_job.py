"""The README's main job command, end to end on its embedded defaults (own broker, SQLite in a temp dir).

The stream's outputs are checked in detail by tests/enricher/test_main_job.py.
"""

import os
import subprocess
import sys


def test_the_run_command_prints_the_results(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDBACK_MINER_")}
    env.update(FEEDBACK_MINER_DATA_DIR=str(tmp_path), FEEDBACK_MINER_STORE__URL=f"sqlite:///{tmp_path / 'store.db'}")
    result = subprocess.run([sys.executable, "-m", "pipelines", "run"], env=env, capture_output=True, timeout=900)
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    assert "feedback.normalized" in out and "feedback.enriched" in out and "feedback.deadletter" in out
    assert "feedback.alerts" in out and "P1" in out  # the bundled samples hold safety and legal escalations
    assert "digest 2026-W47:" in out and "announced on feedback.digests" in out
    assert "dead-letter reasons: not_json=1, not_utf8=1, schema_invalid=3, too_large=1" in out
