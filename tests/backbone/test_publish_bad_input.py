"""``publish`` on poison input (issue 17): every line accepted or rejected with its number and
the stages' reason, the report printed even when Kafka fails midway, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from kafka.errors import KafkaTimeoutError, NotLeaderForPartitionError
from typer.testing import CliRunner

from consumers.kafka_io import read_topic
from consumers.stage import InMessage
from consumers.testing import MemoryLog, MemoryProducer
from consumers.normalizer import NormalizerStage
from pipelines import publishing
from pipelines.publishing import PublishReport, Rejected, parse_lines, publish_events
from topics.schemas import RawFeedback
from topics.serde import decode
from topics.settings import Settings
from tests.backbone.factories import raw_event_dict

DEEP = "[" * 100_000 + "]" * 100_000


def line(**overrides) -> str:
    return json.dumps(raw_event_dict(**overrides))  # ASCII: lone surrogates travel as \u escapes


POISON = {
    "too_deep": DEEP,
    "too_deep/metadata": line(metadata={"a": json.loads("[" * 40 + "]" * 40)}),
    "number_too_large": line(event_id="big").replace('"rating": 1', '"rating": ' + "9" * 5000),
    "schema_invalid/surrogate": line(event_id="s", payload={"text": "好", "device": "\ud800"}),
    "schema_invalid/metadata-key": line(event_id="k", metadata={"\udc00": 1}),
    "schema_invalid/channel": line(event_id="ch", channel={}),
    "schema_invalid/date": line(event_id="d", received_at="9999-12-31T23:59:59-05:00"),
    "not_json": "{oops",
}


def mixed_lines() -> list[str]:
    """good, then each poison line, then good: line 1 and the last line are valid."""
    return [line(event_id="first"), *POISON.values(), "", line(event_id="last")]


def test_each_line_is_accepted_or_rejected_with_its_number_and_the_stage_reason():
    lines = mixed_lines()
    parsed = dict(parse_lines(lines))
    assert isinstance(parsed[1], RawFeedback) and isinstance(parsed[len(lines)], RawFeedback)
    assert len(lines) - 1 not in parsed  # blank lines are skipped
    rejected = [parsed[n] for n in range(2, 2 + len(POISON))]
    assert [(r.line, r.reason) for r in rejected] == [(n, label.split("/")[0]) for n, label in enumerate(POISON, start=2)]
    # The same reason the normalizer dead-letters the same bytes with.
    messages = [InMessage("feedback.raw", 0, n, b"k", value.encode()) for n, value in enumerate(POISON.values())]
    dead = NormalizerStage().process(messages).dead_letters
    assert [d.reason.value for d in dead] == [r.reason for r in rejected]
    assert [d.error for d in dead] == [r.error for r in rejected]
    for r in rejected:
        r.error.encode("utf-8")
    assert "payload.device: lone surrogate \\ud800" in parsed[5].error


def test_a_byte_order_mark_and_str_lines_with_surrogates():
    parsed = dict(parse_lines(["\ufeff" + line(event_id="bom"), '{"event_id": "\ud800"}']))
    assert parsed[1].event_id == "bom"
    assert parsed[2].reason == "not_utf8"


class _Failed:
    def __init__(self, error):
        self.error = error

    def get(self, timeout=None):
        raise self.error


class BreakingProducer(MemoryProducer):
    """Sends ``ok`` records, then fails as a broker that went away does."""

    def __init__(self, log: MemoryLog, ok: int, mode: str):
        super().__init__(log)
        self.ok, self.mode = ok, mode

    def send(self, topic, key=None, value=None, headers=None):
        if self.ok > 0:
            self.ok -= 1
            return super().send(topic, key, value, headers)
        if self.mode == "raise":
            raise KafkaTimeoutError("Failed to update metadata after 60.0 secs.")
        return _Failed(NotLeaderForPartitionError("leader went away"))


@pytest.fixture
def offline_settings():
    return Settings(kafka={"bootstrap_servers": "127.0.0.1:1"})


@pytest.mark.parametrize("mode", ["raise", "future"])
def test_a_kafka_failure_midway_still_reports_every_line(monkeypatch, offline_settings, mode):
    log = MemoryLog()
    producer = BreakingProducer(log, ok=1, mode=mode)
    monkeypatch.setattr(publishing, "make_producer", lambda settings: producer)
    lines = mixed_lines() + [line(event_id="after-1"), line(event_id="after-2")]
    report = PublishReport()
    with pytest.raises((KafkaTimeoutError, NotLeaderForPartitionError)):
        publish_events(offline_settings, parse_lines(lines), report=report)
    assert report.accepted == ["first"] and report.accepted_lines == [1]
    assert len(report.rejected) == len(POISON)  # poison lines after the failure are still reported
    unsent = sorted(r.line for r in report.unsent)
    assert unsent == [len(lines) - 2, len(lines) - 1, len(lines)]
    assert report.error and ("KafkaTimeoutError" in report.error or "NotLeaderForPartitionError" in report.error)
    assert producer.closed
    assert len(log.values(offline_settings.topic("feedback.raw"))) == 1


def test_the_producer_not_starting_reports_every_line(monkeypatch, offline_settings):
    def unreachable(settings):
        raise KafkaTimeoutError("no broker")

    monkeypatch.setattr(publishing, "make_producer", unreachable)
    report = PublishReport()
    with pytest.raises(KafkaTimeoutError):
        publish_events(offline_settings, parse_lines(mixed_lines()), report=report)
    assert report.accepted == [] and len(report.rejected) == len(POISON) and len(report.unsent) == 2


def test_an_event_that_cannot_be_serialised_is_rejected_not_fatal(monkeypatch, offline_settings):
    log = MemoryLog()
    monkeypatch.setattr(publishing, "make_producer", lambda settings: MemoryProducer(log))
    # model_construct skips validation: the only way to hold an event encode() refuses.
    broken = RawFeedback.model_construct(**{**RawFeedback.model_validate(raw_event_dict(event_id="x")).__dict__, "metadata": {"s": "\ud800"}})
    items = [(1, RawFeedback.model_validate(raw_event_dict(event_id="ok"))), (2, broken), (3, Rejected(3, "not_json", "x"))]
    report = publish_events(offline_settings, items)
    assert report.accepted == ["ok"]
    assert [(r.line, r.reason) for r in report.rejected] == [(2, "schema_invalid"), (3, "not_json")]
    assert "cannot be serialised" in report.rejected[0].error and "\\ud800" in report.rejected[0].error


def invoke(monkeypatch, producer, stdin: str):
    from pipelines import cli
    from pipelines.cli import stream

    monkeypatch.setattr(stream, "require_broker", lambda s, command: None)
    monkeypatch.setattr(publishing, "make_producer", lambda settings: producer)
    env = {"FEEDBACK_MINER_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1", "COLUMNS": "300"}
    return CliRunner().invoke(cli.app, ["publish", "-"], input=stdin.encode(), env=env)


def test_cli_prints_the_report_and_exits_3_when_kafka_fails_midway(monkeypatch):
    lines = mixed_lines() + [line(event_id="after")]
    result = invoke(monkeypatch, BreakingProducer(MemoryLog(), ok=1, mode="raise"), "\n".join(lines))
    out = result.output
    assert result.exit_code == 3, out
    assert "Traceback" not in out
    assert f"1 accepted, {len(POISON)} rejected, 2 not published" in out
    assert "line 2 rejected (too_deep)" in out and "line 4 rejected (number_too_large)" in out
    assert f"lines {len(lines) - 1}-{len(lines)} not published (KafkaTimeoutError" in out
    assert out.strip().splitlines()[-1].startswith("error: Kafka: KafkaTimeoutError")


def test_cli_rejects_poison_lines_and_exits_1(monkeypatch):
    log = MemoryLog()
    result = invoke(monkeypatch, MemoryProducer(log), "\n".join(mixed_lines()))
    out = result.output
    assert result.exit_code == 1, out
    assert f"2 accepted, {len(POISON)} rejected" in out and "not published" not in out
    for number, label in enumerate(POISON, start=2):
        assert f"line {number} rejected ({label.split('/')[0]})" in out
    assert "line 5 rejected (schema_invalid): payload.device: lone surrogate \\ud800 is not valid text" in out
    assert len(log.values("feedback.raw")) == 2


@pytest.mark.broker
def test_cli_publish_of_poison_lines_on_the_real_broker(kafka_settings, tmp_path):
    path = tmp_path / "poison.jsonl"
    path.write_text("\n".join(mixed_lines()) + "\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDBACK_MINER_")}
    env.update({
        "FEEDBACK_MINER_KAFKA__BOOTSTRAP_SERVERS": kafka_settings.kafka.bootstrap_servers,
        "FEEDBACK_MINER_KAFKA__TOPIC_PREFIX": kafka_settings.kafka.topic_prefix,
        "COLUMNS": "300",
    })
    result = subprocess.run([sys.executable, "-m", "pipelines", "publish", str(path)], env=env, capture_output=True, timeout=120)
    out = result.stdout.decode() + result.stderr.decode()
    assert result.returncode == 1, out
    assert "Traceback" not in out and f"2 accepted, {len(POISON)} rejected" in out
    assert "line 2 rejected (too_deep): JSON nests 100000 levels deep" in out
    on_topic = [decode(RawFeedback, r.value).event_id for r in read_topic(kafka_settings, "feedback.raw")]
    assert sorted(on_topic) == ["first", "last"]
