"""Dead-letter replay and the operational Prefect flows, on the real broker."""

import pytest

from consumers.kafka_io import make_producer, read_topic
from consumers.normalizer import NormalizerStage
from consumers.runtime import StreamRuntime
from pipelines.dead_letters import REPLAY_HEADER, replay_dead_letters
from topics.serde import headers_dict
from tests.backbone.factories import raw_event_bytes

pytestmark = pytest.mark.broker


def test_replay_sends_selected_originals_back_to_their_source_topic(kafka_settings):
    raw_topic = kafka_settings.topic("feedback.raw")
    producer = make_producer(kafka_settings)
    producer.send(raw_topic, key=b"c-1", value=b"{broken").get(timeout=10)
    producer.send(raw_topic, key=b"c-2", value=raw_event_bytes(channel="fax")).get(timeout=10)
    producer.close()
    StreamRuntime(NormalizerStage(), kafka_settings).run(max_messages=2, idle_exit_s=10)

    dry = replay_dead_letters(kafka_settings, reason="schema_invalid", dry_run=True)
    assert (dry.selected, dry.replayed, dry.by_reason) == (1, 0, {"schema_invalid": 1})

    report = replay_dead_letters(kafka_settings, reason="schema_invalid")
    assert (report.selected, report.replayed, report.next_offset) == (1, 1, 2)
    raw = read_topic(kafka_settings, "feedback.raw")
    assert len(raw) == 3
    [replayed] = [r for r in raw if REPLAY_HEADER in headers_dict(r.headers)]
    assert replayed.key == b"c-2"
    assert replayed.value == raw_event_bytes(channel="fax")
    [schema_invalid_offset] = [r.offset for r in read_topic(kafka_settings, "feedback.deadletter") if b'"schema_invalid"' in r.value]
    assert headers_dict(replayed.headers)[REPLAY_HEADER] == f"{kafka_settings.topic('feedback.deadletter')}@{schema_invalid_offset}"

    assert replay_dead_letters(kafka_settings, from_offset=report.next_offset).selected == 0


def test_provision_flow_runs_under_prefect(kafka_settings, monkeypatch):
    from pipelines.flows.operations import provision_topics_flow

    monkeypatch.setenv("FEEDBACK_MINER_KAFKA__BOOTSTRAP_SERVERS", kafka_settings.kafka.bootstrap_servers)
    monkeypatch.setenv("FEEDBACK_MINER_KAFKA__TOPIC_PREFIX", kafka_settings.kafka.topic_prefix)
    statuses = provision_topics_flow()
    assert {s["name"] for s in statuses} == {kafka_settings.topic(t) for t in (
        "feedback.raw", "feedback.normalized", "feedback.enriched", "feedback.alerts", "feedback.deadletter", "feedback.digests",
        "feedback.corrections")}
    assert {s["action"] for s in statuses} == {"exists"}


def test_flows_give_prefects_temporary_server_time_to_start_on_a_busy_machine():
    """Prefect's 20 s start-up wait for its temporary API server failed a flow run on a loaded 2-core
    machine; importing the flows raises it before Prefect reads its settings (a fresh interpreter,
    as a CLI run is)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"}
    code = ("import pipelines.flows.digest\n"
            "from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS as s\n"
            "print(s.value())")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True)
    assert int(out.stdout.split()[-1]) >= 120
