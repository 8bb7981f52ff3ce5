"""In-memory list sources and sinks for exercising the runtime without a broker.

Like bytewax's testing sources: a ``MemoryLog`` holds topics as lists, and
``MemoryConsumer``/``MemoryProducer`` speak the small part of kafka-python's
interface that ``StreamRuntime`` uses. Integration tests use the real broker.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from types import SimpleNamespace

from kafka import TopicPartition


@dataclass(frozen=True)
class MemoryRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list
    timestamp: int = 0


class MemoryLog:
    """Topics as append-only lists, with committed offsets per consumer group.

    Every topic exists until ``restart()``; after it, as on a restarted broker with memory
    storage, only the topics created again exist (by ``create_topics``, or by appending to
    them, as a broker creates the topics that producers name).
    """

    def __init__(self, partitions: int = 1):
        self.partitions = partitions
        self.records: dict[TopicPartition, list[MemoryRecord]] = defaultdict(list)
        self.committed: dict[tuple[str, TopicPartition], int] = {}
        self.topics: set[str] | None = None  # None: every topic exists (never restarted)

    def exists(self, topic: str) -> bool:
        return self.topics is None or topic in self.topics

    def create_topics(self, *topics: str) -> None:
        if self.topics is not None:
            self.topics.update(topics)

    def restart(self) -> None:
        """Lose every topic, record and committed offset, as a broker with memory storage does."""
        self.topics = set()
        self.records.clear()
        self.committed.clear()

    def append(self, topic: str, value: bytes | None, key: bytes | None = None, headers=None, partition: int | None = None) -> MemoryRecord:
        self.create_topics(topic)
        if partition is None:
            partition = (hash(key) % self.partitions) if key is not None else 0
        tp = TopicPartition(topic, partition)
        record = MemoryRecord(topic, partition, len(self.records[tp]), key, value, list(headers or []))
        self.records[tp].append(record)
        return record

    def values(self, topic: str) -> list[bytes | None]:
        return [r.value for tp, rs in sorted(self.records.items()) if tp.topic == topic for r in rs]


class _Done:
    def __init__(self, value=None, error: Exception | None = None):
        self.value, self.error = value, error

    def get(self, timeout: float | None = None):
        if self.error:
            raise self.error
        return self.value


class MemoryProducer:
    def __init__(self, log: MemoryLog, fail_with: Exception | None = None, failures: int | None = None):
        self.log = log
        # Sends fail with this, as an unreachable broker would: always, or for the first ``failures`` sends.
        self.fail_with = fail_with
        self.failures = failures
        self.flushes = 0
        self.closed = False

    def send(self, topic, key=None, value=None, headers=None):
        if self.fail_with and (self.failures is None or self.failures > 0):
            if self.failures is not None:
                self.failures -= 1
            return _Done(error=self.fail_with)
        return _Done(self.log.append(topic, value, key, headers))

    def flush(self, timeout=None):
        self.flushes += 1

    def close(self, timeout=None):
        self.closed = True


class _MemoryCluster:
    """kafka-python's cluster metadata, read from the log (so never stale)."""

    def __init__(self, log: MemoryLog):
        self.log = log

    def brokers(self) -> list[str]:
        return ["memory:0"]  # a metadata answer has arrived

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return set(range(self.log.partitions)) if self.log.exists(topic) else None

    def request_update(self) -> None:
        pass  # read from the log: nothing to refresh


class MemoryConsumer:
    """Reads assigned partitions from their positions, which a log restart leaves stale as kafka-python does."""

    def __init__(self, log: MemoryLog, group_id: str):
        self.log = log
        self.group_id = group_id
        self.topics: list[str] = []
        self.positions: dict[TopicPartition, int] = {}
        self.commits: list[dict[TopicPartition, int]] = []
        self.closed = False
        self._paused: set[TopicPartition] = set()
        self.config = {"auto_offset_reset": "earliest"}
        self._client = SimpleNamespace(cluster=_MemoryCluster(log))

    def subscribe(self, topics, listener=None):
        self.topics = list(topics)
        for tp in self.assignment():
            self.positions[tp] = self.log.committed.get((self.group_id, tp), 0)
        if listener is not None:
            listener.on_partitions_assigned(self.assignment())

    def assignment(self):
        return {TopicPartition(t, p) for t in self.topics for p in range(self.log.partitions)}

    def poll(self, timeout_ms=0, max_records=None):
        out: dict[TopicPartition, list[MemoryRecord]] = {}
        budget = max_records or 500
        for tp in sorted(self.assignment() - self._paused):
            if not self.log.exists(tp.topic):
                continue  # lost by a restart: nothing to fetch until it is created again
            start = self.positions.get(tp, 0)
            chunk = self.log.records[tp][start:start + budget]
            if chunk:
                out[tp] = chunk
                self.positions[tp] = start + len(chunk)
                budget -= len(chunk)
            if budget <= 0:
                break
        return out

    def pause(self, *partitions):
        self._paused.update(partitions)

    def resume(self, *partitions):
        self._paused.difference_update(partitions)

    def paused(self):
        return set(self._paused)

    def commit(self, offsets):
        self.commits.append({tp: meta.offset for tp, meta in offsets.items()})
        for tp, meta in offsets.items():
            self.log.committed[(self.group_id, tp)] = meta.offset

    def committed(self, tp) -> int | None:
        return self.log.committed.get((self.group_id, tp))

    def seek(self, tp, offset: int) -> None:
        self.positions[tp] = offset

    def seek_to_beginning(self, *partitions) -> None:
        for tp in partitions or self.assignment():
            self.positions[tp] = 0

    def seek_to_end(self, *partitions) -> None:
        for tp in partitions or self.assignment():
            self.positions[tp] = len(self.log.records[tp])

    def highwater(self, tp):
        return len(self.log.records[tp])

    def position(self, tp):
        return self.positions.get(tp, 0)

    def close(self, autocommit=False):
        self.closed = True
