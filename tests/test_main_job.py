"""The README's main job command, end to end on its embedded defaults (own broker, SQLite in a temp dir).

The stream's outputs are checked in detail by tests/enricher/test_main_job.py.
"""

import os
import re
import subprocess
import sys


def test_the_run_command_prints_the_results_and_a_second_run_only_its_own(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDBACK_MINER_")}
    env.update(FEEDBACK_MINER_DATA_DIR=str(tmp_path), FEEDBACK_MINER_STORE__URL=f"sqlite:///{tmp_path / 'store.db'}")

    def run() -> str:
        result = subprocess.run([sys.executable, "-m", "pipelines", "run"], env=env, capture_output=True, timeout=900)
        assert result.returncode == 0, result.stderr.decode()[-3000:]
        return result.stdout.decode()

    out = run()
    assert "feedback.normalized" in out and "feedback.enriched" in out and "feedback.deadletter" in out
    assert "feedback.alerts" in out and "P1" in out  # the bundled samples hold safety and legal escalations
    assert re.search(r"feedback\.alerts \([1-9]\d* alerts", out)
    assert "already processed" not in out
    assert "digest 2026-W47:" in out and "announced on feedback.digests" in out
    assert "dead-letter reasons: not_json=1, not_utf8=1, schema_invalid=3, too_large=1" in out

    # The same sample file again on the same store (a new embedded broker: offsets start at 0 again).
    # Its events were processed by the first run: nothing is counted again and no alert of the first
    # run is published again; the report says so instead of listing them as new.
    again = " ".join(run().split())
    enriched = int(re.search(r"→ feedback\.enriched \((\d+)\)", again).group(1))
    assert f"feedback.alerts: {enriched} events were already processed by an earlier run" in again
    assert "no new alerts" in again
    assert not re.search(r"feedback\.alerts \(\d+ alerts", again)


def test_a_replayed_file_is_published_in_event_time_order():
    from pipelines.main_job import in_event_time_order
    from pipelines.publishing import Rejected, parse_lines

    lines = [
        b'{"event_id": "late", "channel": "app", "source": "t", "received_at": "2026-11-16T10:00:00+08:00", "customer": {"id": "c1"}, "payload": {"text": "a"}}',
        b'not json',
        b'{"event_id": "early", "channel": "app", "source": "t", "received_at": "2026-11-16T01:30:00+00:00", "customer": {"id": "c2"}, "payload": {"text": "b"}}',
        b'{"event_id": "tie", "channel": "app", "source": "t", "received_at": "2026-11-16T02:00:00+00:00", "customer": {"id": "c3"}, "payload": {"text": "c"}}',
        b'{"event_id": "tie2", "channel": "app", "source": "t", "received_at": "2026-11-16T10:00:00+08:00", "customer": {"id": "c4"}, "payload": {"text": "d"}}',
    ]
    ordered = in_event_time_order(parse_lines(lines))
    assert isinstance(ordered[0][1], Rejected) and ordered[0][0] == 2
    # 01:30Z, then 02:00Z and 10:00+08:00 (= 02:00Z) in their line order.
    assert [item.event_id for _, item in ordered[1:]] == ["early", "late", "tie", "tie2"]
