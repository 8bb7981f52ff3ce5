"""Stages as OS processes, as in production, and the count that ends every process fault test.

Each stage runs as ``python -m pipelines consume STAGE`` (the ``feedback-miner consume``
command) with its settings in ``FEEDBACK_MINER_`` environment variables, its log in a
file and its Prometheus metrics on a port of its own: the test sees it only from outside
(metrics, log, exit code, the topics and the store), and can SIGKILL, SIGSTOP or SIGTERM it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from kafka import KafkaProducer, TopicPartition

from consumers.kafka_io import make_producer, read_topic
from topics.admin import admin_client
from topics.embedded import _die_with_parent, free_port
from topics.schemas import DeadLetter, EnrichedFeedback, Event, NormalizedFeedback
from topics.serde import decode, encode, encode_key, make_headers
from topics.settings import ENV_PREFIX, Settings
from topics.specs import DEADLETTER, ENRICHED, NORMALIZED, RAW

REPO = Path(__file__).resolve().parents[2]


def process_settings(base: Settings, **runtime: object) -> Settings:
    """``base`` with a short group session (a dead member is noticed in ~3 s), short request timeout
    and fast retries: the settings of the stage processes and of the test's own clients."""
    return base.model_copy(update={
        "kafka": base.kafka.model_copy(update={"session_timeout_ms": 3000, "heartbeat_interval_ms": 1000, "request_timeout_ms": 5000}),
        "runtime": base.runtime.model_copy(update={
            "batch_size": 64, "batch_timeout_ms": 300, "retry_backoff_ms": 100, "retry_backoff_max_ms": 1000, **runtime,
        }),
    })


def stage_env(settings: Settings, metrics_port: int) -> dict[str, str]:
    """The environment a stage process reads ``settings`` from (nothing inherited from the caller's own)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    kafka, runtime = settings.kafka, settings.runtime
    values = {
        "KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "KAFKA__TOPIC_PREFIX": kafka.topic_prefix,
        "KAFKA__GROUP_PREFIX": kafka.group_prefix,
        "KAFKA__SESSION_TIMEOUT_MS": kafka.session_timeout_ms,
        "KAFKA__HEARTBEAT_INTERVAL_MS": kafka.heartbeat_interval_ms,
        "KAFKA__REQUEST_TIMEOUT_MS": kafka.request_timeout_ms,
        "KAFKA__CONNECT_TIMEOUT_S": kafka.connect_timeout_s,
        "KAFKA__DEFAULT_PARTITIONS": kafka.default_partitions,
        "RUNTIME__BATCH_SIZE": runtime.batch_size,
        "RUNTIME__BATCH_TIMEOUT_MS": runtime.batch_timeout_ms,
        "RUNTIME__RETRY_BACKOFF_MS": runtime.retry_backoff_ms,
        "RUNTIME__RETRY_BACKOFF_MAX_MS": runtime.retry_backoff_max_ms,
        "RUNTIME__METRICS_PORT": metrics_port,
        "STORE__URL": settings.store.url,
        "DATA_DIR": settings.data_dir,
    }
    env.update({f"{ENV_PREFIX}{k}": str(v) for k, v in values.items()})
    env["PYTHONUNBUFFERED"] = "1"
    return env


_ASSIGNED = re.compile(r"stage \w+ assigned \[(.*)\]")
# The stages log as in production. (2026-12-07: at INFO a stage's first Tansu group join could hang: kafka-python
# dropped join rounds that finished between polls, fixed in consumers.kafka_group_join.)
STAGE_LOG_LEVEL = "INFO"


class StageProcess:
    """One ``feedback-miner consume STAGE`` process; every life (restart) appends to the same log."""

    def __init__(self, stage: str, settings: Settings, log_path: Path):
        self.stage = stage
        self.settings = settings
        self.log_path = log_path
        self.metrics_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> StageProcess:
        assert self.process is None or self.process.poll() is not None, "already running"
        with open(self.log_path, "ab") as log_file:
            log_file.write(f"--- start {self.starts + 1}\n".encode())
            log_file.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pipelines", "--log-level", STAGE_LOG_LEVEL, "consume", self.stage],
                cwd=REPO, env=stage_env(self.settings, self.metrics_port),
                stdout=log_file, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
            )
        self.starts += 1
        return self

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def send(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL, and reap it."""
        if self.alive():
            self.process.kill()
        self.process.wait(10)

    def wait_exit(self, timeout_s: float) -> int:
        return self.process.wait(timeout_s)

    def stop(self, timeout_s: float = 30) -> int | None:
        """SIGTERM (finish the batch, commit, leave), SIGKILL when it does not go; None when not running."""
        if not self.alive():
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGCONT)  # a stopped process cannot handle SIGTERM
        self.process.terminate()
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            raise AssertionError(f"{self.stage} did not stop within {timeout_s}s after SIGTERM:\n{self.tail()}") from None

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def assignments(self) -> list[str]:
        """Every assignment this process logged, in order ('' for an empty one)."""
        return _ASSIGNED.findall(self.log())

    def metrics(self) -> dict[str, float] | None:
        """The stage's own counters (processed, pending, paused), or None while it does not answer."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=1) as answer:
                text = answer.read().decode()
        except (urllib.error.URLError, OSError, TimeoutError):
            return None
        values = {}
        for name, short in (("feedback_miner_messages_processed_total", "processed"),
                            ("feedback_miner_batch_pending", "pending"), ("feedback_miner_stage_paused", "paused")):
            match = re.search(rf'^{name}\{{stage="{self.stage}"\}} (\S+)$', text, re.MULTILINE)
            values[short] = float(match.group(1)) if match else 0.0
        return values

    def check_alive(self) -> None:
        if not self.alive():
            raise AssertionError(f"{self.stage} exited with {self.process.returncode}:\n{self.tail()}")


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str, processes: Iterable[StageProcess] = (),
               interval_s: float = 0.05) -> float:
    """Poll ``condition``; fail after ``timeout_s``, or at once when one of ``processes`` died. Returns seconds waited."""
    processes = list(processes)
    started = time.monotonic()
    while not condition():
        for process in processes:
            process.check_alive()
        if time.monotonic() - started > timeout_s:
            logs = "\n".join(f"--- {p.stage} (pid {p.process.pid if p.process else '-'}):\n{p.tail(15)}" for p in processes)
            pytest.fail(f"timed out after {timeout_s}s waiting for {what}\n{logs}")
        time.sleep(interval_s)
    return time.monotonic() - started


# --- input, with the offsets the broker gave it -------------------------------------------


def malformed_raw(n: int, prefix: str) -> list[dict]:
    """Raw events the normalizer must dead-letter (an unknown channel: schema_invalid)."""
    return [{"event_id": f"{prefix}-bad-{i:03d}", "channel": "fax", "source": "fault-test",
             "received_at": "2026-11-16T09:00:00+00:00", "payload": {"text": "传真内容"}} for i in range(n)]


class Publisher:
    """Publishes events to one topic (acks=all) and remembers what went where: the end offset of
    every partition. Dicts go as JSON (raw events, or deliberately bad ones); events with headers."""

    def __init__(self, settings: Settings, topic: str = RAW):
        self.settings = settings
        self.topic = topic
        self.sent: dict[bytes, str] = {}  # value -> event id
        self.ends: Counter[int] = Counter()  # partition -> next offset
        self._producer: KafkaProducer = make_producer(settings, linger_ms=10)
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def publish(self, events: Iterable[dict | Event]) -> int:
        futures = []
        for event in events:
            if isinstance(event, Event):
                event_id, key, value, headers = event.event_id, encode_key(event.key()), encode(event), make_headers(event)
            else:
                event_id, value, headers = event["event_id"], json.dumps(event, ensure_ascii=False).encode("utf-8"), []
                key = ((event.get("customer") or {}).get("id") or event_id).encode()
            self.sent[value] = event_id
            futures.append(self._producer.send(self.settings.topic(self.topic), key=key, value=value, headers=headers))
        self._producer.flush(timeout=60)
        for future in futures:
            meta = future.get(timeout=60)
            self.ends[meta.partition] = max(self.ends[meta.partition], meta.offset + 1)
        return len(futures)

    def publish_steadily(self, events: list[dict], per_second: float, chunk: int = 10) -> None:
        """Publish in a background thread at about ``per_second``; ``join()`` waits for the last one."""
        def run() -> None:
            try:
                started = time.monotonic()
                for i in range(0, len(events), chunk):
                    self.publish(events[i : i + chunk])
                    time.sleep(max(0.0, started + (i + chunk) / per_second - time.monotonic()))
            except BaseException as exc:  # noqa: BLE001 - reported by join()
                self.error = exc

        self._thread = threading.Thread(target=run, name="publisher", daemon=True)
        self._thread.start()

    def join(self, timeout_s: float = 120) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)
            assert not self._thread.is_alive(), "the publisher did not finish"
        if self.error is not None:
            raise AssertionError(f"publishing failed: {self.error!r}") from self.error

    def close(self) -> None:
        self._producer.close(timeout=10)


def committed_offsets(settings: Settings, stage: str, topic: str = RAW) -> dict[int, int]:
    """The group's committed offset of every input partition, as the broker answers (absent: none)."""
    admin = admin_client(settings)
    try:
        group = settings.group_id(stage)
        partitions = [TopicPartition(settings.topic(topic), p) for p in range(settings.kafka.default_partitions)]
        answer = admin.list_group_offsets({group: partitions})[group]
    finally:
        admin.close()
    return {tp.partition: meta.offset for tp, meta in answer.items() if meta is not None and meta.offset >= 0}


def all_committed(settings: Settings, stage: str, publisher: Publisher) -> bool:
    try:
        committed = committed_offsets(settings, stage, publisher.topic)
    except Exception:  # noqa: BLE001 - the broker may be paused or restarting: not yet
        return False
    return all(committed.get(p, 0) >= end for p, end in publisher.ends.items())


# --- the count ---------------------------------------------------------------------------


@dataclass
class Count:
    """Events in = stored + dead-lettered (linked duplicates are stored too, with ``duplicate_of``)."""

    events_in: int
    stored: int
    dead_lettered: int
    linked_duplicates: int
    missing: list[str]
    duplicate_rows: int
    unexpected: list[str]
    # Events both forwarded and dead-lettered, or forwarded without their row in the store (or the reverse).
    inconsistent: list[str]
    # Output events delivered more than once (at-least-once allows it): copies beyond the first.
    topic_duplicates: dict[str, int] = field(default_factory=dict)

    def check(self) -> None:
        assert self.missing == [], f"{len(self.missing)} events missing, e.g. {self.missing[:5]}"
        assert self.unexpected == [], f"events nobody sent: {self.unexpected[:5]}"
        assert self.duplicate_rows == 0, f"{self.duplicate_rows} duplicate rows in the store"
        assert self.inconsistent == [], f"forwarded and dead-lettered, or forwarded and not stored: {self.inconsistent[:5]}"
        assert self.events_in == self.stored + self.dead_lettered, self


def count_normalizer(settings: Settings, publisher: Publisher) -> Count:
    """What the normalizer made of everything published: its output topic, dead letters and its store
    (the dedup index keeps one fingerprint per event id it forwarded)."""
    return count_stage(settings, publisher, NORMALIZED, NormalizedFeedback, "dedup_fingerprints")


def count_enricher(settings: Settings, publisher: Publisher) -> Count:
    """What the enricher made of everything published: ``feedback.enriched``, dead letters, its rows."""
    return count_stage(settings, publisher, ENRICHED, EnrichedFeedback, "enriched_feedback")


def count_stage(settings: Settings, publisher: Publisher, output: str, model: type[Event], table: str) -> Count:
    import sqlalchemy as sa

    from consumers.store import make_engine

    outputs = [decode(model, r.value, list(r.headers or [])) for r in read_topic(settings, output, timeout_s=60)]
    dead = [decode(DeadLetter, r.value, list(r.headers or [])) for r in read_topic(settings, DEADLETTER, timeout_s=60)]
    out_ids = Counter(e.event_id for e in outputs)
    dead_ids = Counter(publisher.sent.get(d.original_bytes(), f"unknown:{d.original_base64[:20]}") for d in dead)
    engine = make_engine(settings.store.url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text(f"SELECT event_id, COUNT(*) FROM {table} GROUP BY event_id")).all()
    finally:
        engine.dispose()
    sent = set(publisher.sent.values())
    rows = [(event_id, n) for event_id, n in rows if event_id in sent]  # the store may hold earlier runs' events
    stored = {event_id for event_id, _ in rows}
    return Count(
        events_in=len(sent),
        stored=len(stored),
        dead_lettered=len(set(dead_ids) & sent),
        linked_duplicates=len({e.event_id for e in outputs if getattr(e, "duplicate_of", None)}),
        missing=sorted(sent - set(out_ids) - set(dead_ids)),
        duplicate_rows=sum(n - 1 for _, n in rows),
        unexpected=sorted((set(out_ids) | set(dead_ids)) - sent),
        inconsistent=sorted((set(out_ids) & set(dead_ids)) | (set(out_ids) ^ stored)),
        topic_duplicates={output: sum(n - 1 for n in out_ids.values()), DEADLETTER: sum(n - 1 for n in dead_ids.values())},
    )
