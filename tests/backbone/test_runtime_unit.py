"""The runtime's batching, commit and dead-letter logic on in-memory lists (no broker)."""

import json
import threading
import time

import pytest
from kafka import TopicPartition

from consumers.normalizer import NormalizerStage
from consumers.runtime import StreamRuntime
from consumers.stage import InMessage, OutMessage, Stage, StageResult, process_batch
from consumers.testing import MemoryConsumer, MemoryLog, MemoryProducer
from topics.schemas import DeadLetter, NormalizedFeedback
from topics.serde import decode
from topics.settings import Settings
from tests.backbone.factories import raw_event_bytes

RAW, NORMALIZED, DLQ = "feedback.raw", "feedback.normalized", "feedback.deadletter"


def make_settings(batch_size=4, batch_timeout_ms=50, linger_ms=20) -> Settings:
    return Settings(kafka={"bootstrap_servers": "memory:0"},
                    runtime={"batch_size": batch_size, "batch_timeout_ms": batch_timeout_ms, "linger_ms": linger_ms})


def fill(log: MemoryLog, n: int, bad: set[int] = frozenset(), prefix: str = "e") -> None:
    for i in range(n):
        value = b"{broken" if i in bad else raw_event_bytes(event_id=f"{prefix}-{i}")
        log.append(RAW, value, key=b"c-1")


def runtime_for(log: MemoryLog, stage: Stage, settings: Settings, group="g") -> tuple[StreamRuntime, MemoryConsumer]:
    consumer = MemoryConsumer(log, group)
    return StreamRuntime(stage, settings, consumer=consumer, producer=MemoryProducer(log)), consumer


def test_batches_by_size_and_commits_after_each_batch():
    log = MemoryLog()
    fill(log, 10)
    runtime, consumer = runtime_for(log, NormalizerStage(), make_settings(batch_size=4))
    stats = runtime.run(max_messages=10)
    assert stats.batches == 3
    assert [list(c.values())[0] for c in consumer.commits] == [4, 8, 10]
    assert [decode(NormalizedFeedback, v).event_id for v in log.values(NORMALIZED)] == [f"e-{i}" for i in range(10)]
    assert consumer.closed


def test_batches_by_time_when_input_is_slow():
    log = MemoryLog()
    fill(log, 3)
    runtime, consumer = runtime_for(log, NormalizerStage(), make_settings(batch_size=100, batch_timeout_ms=30))
    stats = runtime.run(idle_exit_s=0.3)
    assert (stats.batches, stats.processed) == (1, 3)
    assert consumer.commits[-1] == {next(iter(consumer.assignment())): 3}


def test_invalid_messages_go_to_dead_letter_and_offsets_still_commit():
    log = MemoryLog()
    fill(log, 6, bad={1, 4})
    runtime, consumer = runtime_for(log, NormalizerStage(), make_settings(batch_size=6))
    stats = runtime.run(max_messages=6)
    assert (stats.produced, stats.dead_lettered) == (4, 2)
    dead = [decode(DeadLetter, v) for v in log.values(DLQ)]
    assert [(d.reason.value, d.offset, d.original_bytes()) for d in dead] == [("not_json", 1, b"{broken"), ("not_json", 4, b"{broken")]
    assert all(d.stage == "normalizer" and d.source_topic == RAW for d in dead)
    assert consumer.commits[-1][next(iter(consumer.assignment()))] == 6


class ExplodesOn(Stage):
    """Fails the whole batch whenever it contains a poisoned message."""

    name, input_topic = "exploding", RAW

    def __init__(self, poison: bytes):
        self.poison = poison
        self.calls: list[int] = []

    def process(self, messages: list[InMessage]) -> StageResult:
        self.calls.append(len(messages))
        if any(self.poison in (m.value or b"") for m in messages):
            raise RuntimeError("poisoned")
        return StageResult(outputs=[OutMessage(NORMALIZED, decode(NormalizedFeedback, m.value)) for m in messages])


def normalized_bytes(event_id: str, text: str) -> bytes:
    return json.dumps({
        "event_id": event_id, "channel": "app", "source": "s", "received_at": "2026-11-16T09:00:00+00:00",
        "customer": {"id": "c"}, "text": text,
    }, ensure_ascii=False).encode()


def test_a_failing_batch_is_retried_per_message_and_only_the_culprit_is_dead_lettered():
    messages = [InMessage(RAW, 0, i, None, normalized_bytes(f"e-{i}", "毒" if i == 2 else "好")) for i in range(4)]
    stage = ExplodesOn("毒".encode())
    result = process_batch(stage, messages)
    assert stage.calls == [4, 1, 1, 1, 1]
    assert [o.event.event_id for o in result.outputs] == ["e-0", "e-1", "e-3"]
    assert len(result.dead_letters) == 1
    dead = result.dead_letters[0]
    assert (dead.reason.value, dead.offset) == ("processing_error", 2)
    assert "RuntimeError: poisoned" in dead.error
    assert dead.original_bytes() == messages[2].value


def fast_retry_settings(batch_size=3) -> Settings:
    return Settings(kafka={"bootstrap_servers": "memory:0"},
                    runtime={"batch_size": batch_size, "batch_timeout_ms": 50, "retry_backoff_ms": 20, "retry_backoff_max_ms": 80})


def test_an_unreachable_broker_pauses_the_stage_commits_nothing_and_it_catches_up():
    log = MemoryLog()
    fill(log, 3)
    consumer = MemoryConsumer(log, "g")
    producer = MemoryProducer(log, fail_with=TimeoutError("broker down"), failures=6)
    # Each failed produce gets a "new" producer: here the same one, whose broker comes back.
    runtime = StreamRuntime(NormalizerStage(), fast_retry_settings(), consumer=consumer, producer=producer,
                            producer_factory=lambda: producer)
    stats = runtime.run(max_messages=3)
    assert (stats.pauses, stats.transient_faults, stats.dead_lettered) == (1, 2, 0)  # one pause, two failed tries of 3 sends
    assert [decode(NormalizedFeedback, v).event_id for v in log.values(NORMALIZED)] == ["e-0", "e-1", "e-2"]
    assert consumer.commits == [{next(iter(consumer.assignment())): 3}]  # committed once, after the outage
    assert not runtime.paused and consumer.paused() == set()


class FlakyStore(Stage):
    """A stage whose store is down for the first ``outage`` calls, as during a database restart."""

    name, input_topic = "flaky", RAW

    def __init__(self, outage: int, error: Exception):
        self.outage, self.error, self.calls = outage, error, 0

    def process(self, messages):
        self.calls += 1
        if self.calls <= self.outage:
            raise self.error
        return StageResult(outputs=[OutMessage(NORMALIZED, decode(NormalizedFeedback, m.value)) for m in messages])


def store_down_error():
    import sqlalchemy.exc

    return sqlalchemy.exc.OperationalError("INSERT ...", {}, ConnectionRefusedError("connection refused"))


def test_a_store_outage_is_not_the_messages_fault():
    import sqlalchemy.exc

    stage = FlakyStore(1, store_down_error())
    with pytest.raises(sqlalchemy.exc.OperationalError):
        process_batch(stage, [InMessage(RAW, 0, 0, None, normalized_bytes("e-0", "好"))])
    assert stage.calls == 1  # not retried per message: the batch stays whole for the runtime to retry


def test_the_stage_waits_out_a_store_outage_then_processes_the_same_batch():
    log = MemoryLog()
    for i in range(4):
        log.append(RAW, normalized_bytes(f"e-{i}", "好"))
    consumer = MemoryConsumer(log, "g")
    stage = FlakyStore(outage=4, error=store_down_error())
    runtime = StreamRuntime(stage, fast_retry_settings(batch_size=4), consumer=consumer, producer=MemoryProducer(log))
    stats = runtime.run(max_messages=4)
    assert (stats.processed, stats.dead_lettered, stats.pauses, stats.transient_faults) == (4, 0, 1, 4)
    assert log.values(DLQ) == []
    assert len(log.values(NORMALIZED)) == 4


def test_a_producer_the_broker_forgot_is_replaced():
    from kafka.errors import OutOfOrderSequenceNumberError

    log = MemoryLog()
    fill(log, 2)
    forgotten = MemoryProducer(log, fail_with=OutOfOrderSequenceNumberError("broker restarted"))
    fresh = MemoryProducer(log)
    provisioned = []
    runtime = StreamRuntime(NormalizerStage(), fast_retry_settings(batch_size=2), consumer=MemoryConsumer(log, "g"),
                            producer=forgotten, producer_factory=lambda: fresh, provision_topics=lambda: provisioned.append(1))
    stats = runtime.run(max_messages=2)
    assert forgotten.closed and stats.pauses == 1
    assert provisioned == [1]  # a broker that forgot the producer may have lost the topics too
    assert len(log.values(NORMALIZED)) == 2


def test_stop_while_paused_leaves_without_committing():
    log = MemoryLog()
    fill(log, 2)
    consumer = MemoryConsumer(log, "g")
    down = MemoryProducer(log, fail_with=TimeoutError("broker down"))
    runtime = StreamRuntime(NormalizerStage(), fast_retry_settings(batch_size=2), consumer=consumer,
                            producer=down, producer_factory=lambda: down)
    threading.Timer(0.3, runtime.stop).start()
    stats = runtime.run()
    assert stats.pauses == 1 and stats.processed == 0
    assert consumer.commits == [] and consumer.closed


class RewritesOne(Stage):
    """Passes events through, but gives event e-1 the text ``text`` (unencodable, or far too large)."""

    name, input_topic = "rewriting", RAW

    def __init__(self, text: str):
        self.text = text

    def process(self, messages):
        outputs = []
        for m in messages:
            event = decode(NormalizedFeedback, m.value)
            if event.event_id == "e-1":
                event = event.model_copy(update={"text": self.text})
            outputs.append(OutMessage(NORMALIZED, event))
        return StageResult(outputs=outputs)


def test_an_output_that_cannot_be_serialised_dead_letters_its_message_only():
    messages = [InMessage(RAW, 0, i, None, normalized_bytes(f"e-{i}", "好")) for i in range(3)]
    result = process_batch(RewritesOne("坏\ud800"), messages)
    assert [o.event.event_id for o in result.outputs] == ["e-0", "e-2"]
    assert [(d.offset, d.reason.value) for d in result.dead_letters] == [(1, "processing_error")]
    assert "surrogate" in result.dead_letters[0].error
    assert [r.topic for r in result.records] == [NORMALIZED, DLQ, NORMALIZED]  # in input order
    assert all(isinstance(r.value, bytes) for r in result.records)


def test_restart_resumes_from_the_committed_offset():
    log = MemoryLog()
    fill(log, 5)
    first, _ = runtime_for(log, NormalizerStage(), make_settings(batch_size=5))
    first.run(max_messages=5)
    fill(log, 3)  # e-0..e-2 again as new records, offsets 5..7
    second, consumer = runtime_for(log, NormalizerStage(), make_settings(batch_size=5))
    stats = second.run(idle_exit_s=0.2)
    assert stats.processed == 3
    assert len(log.values(NORMALIZED)) == 8


def wait_for(condition, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def run_in_thread(runtime: StreamRuntime, errors: list) -> threading.Thread:
    def run():
        try:
            runtime.run()
        except Exception as exc:  # asserted by the test thread
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_after_a_memory_broker_restart_the_recreated_input_is_read_from_the_start():
    """A restarted broker with memory storage loses the topics and offsets; the consumer keeps its position.

    The stage must not read the recreated input topic from that stale position (10), past new events below it.
    """
    log = MemoryLog()
    raw = TopicPartition(RAW, 0)
    provisioned = []
    consumer = MemoryConsumer(log, "g")
    runtime = StreamRuntime(NormalizerStage(), make_settings(), consumer=consumer, producer=MemoryProducer(log),
                            provision_topics=lambda: (log.create_topics(RAW, NORMALIZED, DLQ), provisioned.append(1)))
    errors = []
    thread = run_in_thread(runtime, errors)
    try:
        fill(log, 10)
        assert wait_for(lambda: log.committed.get(("g", raw)) == 10), "the first events were not committed"
        log.restart()
        assert wait_for(lambda: log.exists(RAW)), "the stage did not provision the lost input topic"
        fill(log, 15, prefix="n")  # more than the stale position: a fetch from it finds n-10 and later
        # Not asserted here: the assertions below say what went wrong.
        wait_for(lambda: len(log.values(NORMALIZED)) >= 15 and log.committed.get(("g", raw)) == 15, timeout_s=10)
    finally:
        runtime.stop()
        thread.join(5)
    assert not thread.is_alive() and not errors
    assert provisioned == [1]
    after_restart = [decode(NormalizedFeedback, v).event_id for v in log.values(NORMALIZED)]
    assert after_restart == [f"n-{i}" for i in range(15)]  # all, once each, in publication order
    assert log.committed[("g", raw)] == 15


def test_stop_finishes_the_pending_batch_and_commits():
    log = MemoryLog()
    fill(log, 2)
    runtime, consumer = runtime_for(log, NormalizerStage(), make_settings(batch_size=100, batch_timeout_ms=60_000,
                                                                          linger_ms=60_000))
    threading.Timer(0.3, runtime.stop).start()
    stats = runtime.run()
    assert stats.processed == 2  # flushed on stop, long before the batch timeout
    assert consumer.commits and consumer.closed


def test_a_lull_closes_a_started_batch_long_before_its_timeout():
    log = MemoryLog()
    fill(log, 3)
    runtime, consumer = runtime_for(log, NormalizerStage(), make_settings(batch_size=100, batch_timeout_ms=60_000,
                                                                          linger_ms=20))
    committed_at: list[float] = []
    commit = consumer.commit
    consumer.commit = lambda offsets: (committed_at.append(time.monotonic()), commit(offsets))
    threading.Timer(1.5, runtime.stop).start()
    started = time.monotonic()
    stats = runtime.run()
    # The three events went out in one batch as soon as a poll found nothing more, not at stop.
    assert stats.batches == 1 and stats.processed == 3
    assert committed_at and committed_at[0] - started < 0.7


def test_metrics_endpoint_reports_processed_and_dead_lettered():
    import urllib.request

    from topics.embedded import free_port

    port = free_port()
    log = MemoryLog()
    fill(log, 5, bad={0})
    settings = Settings(kafka={"bootstrap_servers": "memory:0"}, runtime={"batch_size": 5, "metrics_port": port})
    runtime, _ = runtime_for(log, NormalizerStage(), settings)
    runtime.run(max_messages=5)
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert 'feedback_miner_messages_processed_total{stage="normalizer"}' in body
    assert 'feedback_miner_dead_lettered_total{reason="not_json",stage="normalizer"}' in body
    assert 'feedback_miner_consumer_lag{partition="0",stage="normalizer",topic="feedback.raw"} 0.0' in body


def test_json_logs_are_one_object_per_line():
    import logging

    from consumers.logging_setup import JsonFormatter

    record = logging.LogRecord("consumers.runtime", logging.INFO, __file__, 1, "batch: %d in", (3,), None)
    line = JsonFormatter().format(record)
    assert json.loads(line) == {**json.loads(line), "level": "INFO", "logger": "consumers.runtime", "msg": "batch: 3 in"}


def test_an_output_over_the_producer_limit_dead_letters_its_message_as_too_large():
    messages = [InMessage(RAW, 0, i, None, normalized_bytes(f"e-{i}", "好")) for i in range(3)]
    result = process_batch(RewritesOne("长" * 5000), messages, max_record_bytes=4096)
    assert [o.event.event_id for o in result.outputs] == ["e-0", "e-2"]
    assert [(d.offset, d.reason.value) for d in result.dead_letters] == [(1, "too_large")]
    assert "producer's limit is 4096" in result.dead_letters[0].error
