"""The stream runtime: poll → batch → process → produce → flush → commit.

At-least-once: offsets are committed only after every output and dead letter
of the batch was acknowledged by the broker (acks=all). SIGTERM/SIGINT finish
the current batch, commit and leave the group.

A transient fault (the store or the broker unavailable) pauses the stage: it
keeps its uncommitted batch, stops fetching, keeps its group membership alive
and retries the batch with exponential backoff until the dependency is back.
A producer the broker has forgotten (an embedded broker restarted) is
recreated, and missing topics are provisioned again: after a failed send, and
whenever the input topic is missing from the broker's metadata (an idle stage).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata

from consumers import metrics
from consumers.faults import describe, is_transient, needs_new_producer
from consumers.kafka_io import close_now, make_consumer, make_producer, subscribe_without_creating
from consumers.stage import InMessage, Record, Stage, StageResult, process_batch
from topics.admin import ensure_topics
from topics.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class RunStats:
    batches: int = 0
    processed: int = 0
    produced: int = 0
    dead_lettered: int = 0
    # Transient faults met, and how many times the stage paused for one.
    transient_faults: int = 0
    pauses: int = 0
    produced_by_topic: Counter[str] = field(default_factory=Counter)


class _DropOnRevoke(ConsumerRebalanceListener):
    """Forget the uncommitted batch when partitions move: their new owner reads it again.

    kafka-python runs this callback on its IO thread, where committing (a blocking
    call) is refused, while the stage thread waits in ``poll``. At-least-once holds:
    nothing of the batch was committed, and every effect downstream is keyed by event id.
    """

    def __init__(self, runtime: StreamRuntime):
        self.runtime = runtime

    def on_partitions_revoked(self, revoked):  # noqa: D401 - kafka-python callback
        if revoked and self.runtime.pending_count:
            log.info("stage %s: partitions revoked with %d uncommitted messages; they will be read again",
                     self.runtime.stage.name, self.runtime.pending_count)
        self.runtime.drop_pending()

    def on_partitions_assigned(self, assigned):
        self.runtime.assigned = frozenset(assigned)
        self.runtime.reposition_needed = True
        self.runtime.assigned_at = time.monotonic()
        log.info("stage %s assigned %s", self.runtime.stage.name, sorted((tp.topic, tp.partition) for tp in assigned))


class StreamRuntime:
    def __init__(
        self,
        stage: Stage,
        settings: Settings,
        consumer: KafkaConsumer | None = None,
        producer: KafkaProducer | None = None,
        group_id: str | None = None,
        producer_factory: Callable[[], KafkaProducer] | None = None,
        provision_topics: Callable[[], object] | None = None,
    ):
        self.stage = stage
        self.settings = settings
        self.group_id = group_id or settings.group_id(stage.name)
        self._consumer = consumer
        self._producer = producer
        # Makes the first producer, and a new one when the broker forgot the old one's state.
        self._new_producer = producer_factory or (lambda: make_producer(settings))
        # Creates missing topics (a restarted embedded broker lost them) after a Kafka fault.
        self._provision_topics = provision_topics or (lambda: ensure_topics(settings))
        self._pending: list[InMessage] = []
        self._batch_started: float | None = None
        self._stop = threading.Event()
        self.stats = RunStats()
        # Partitions this instance owns after the last rebalance (read by operators and tests).
        self.assigned: frozenset[TopicPartition] = frozenset()
        self.assigned_at: float | None = None
        # Set on every assignment: the stage thread then reads each partition from its committed offset.
        self.reposition_needed = False
        # While paused by a transient fault: when to retry, and the current backoff.
        self._retry_at: float | None = None
        self._backoff_s = settings.runtime.retry_backoff_ms / 1000
        # When the input topic is missing from the broker's metadata: the next provisioning try, and its backoff.
        self._provision_at = 0.0
        self._provision_backoff_s = self._backoff_s
        self._input_lost = False  # the input topic was missing since the last records were read

    @property
    def paused(self) -> bool:
        return self._retry_at is not None

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    # --- lifecycle ---------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to finish the current batch, commit and leave."""
        self._stop.set()

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop())

    def run(self, max_messages: int | None = None, idle_exit_s: float | None = None) -> RunStats:
        """Run until stopped, until ``max_messages`` were processed, or ``idle_exit_s`` after the last input."""
        metrics.serve(self.settings.runtime.metrics_port)
        self._consumer = self._consumer or make_consumer(self.settings, self.group_id)
        self._subscribe()
        self._producer = self._producer or self._new_producer()
        batch_size = self.settings.runtime.batch_size
        batch_timeout = self.settings.runtime.batch_timeout_ms / 1000
        linger = self.settings.runtime.linger_ms / 1000
        last_input = time.monotonic()
        join_allowance = 2 * self.settings.kafka.session_timeout_ms / 1000
        log.info("stage %s consuming %s as group %s", self.stage.name, self.stage.input_topic, self.group_id)
        try:
            while not self._stop.is_set():
                if self.paused:
                    self._wait_paused()
                    continue
                if self.reposition_needed:
                    self._reposition()
                    continue
                self._provision_missing_input()
                if max_messages is not None and self.stats.processed + len(self._pending) >= max_messages:
                    break
                wait = batch_timeout if self._batch_started is None else max(0.0, self._batch_started + batch_timeout - time.monotonic())
                wait = min(wait, 0.5)  # stay responsive to stop requests whatever the batch timeout
                if self._pending:
                    wait = min(wait, linger)
                records = self._poll(timeout_ms=int(wait * 1000) or 1, max_records=batch_size - len(self._pending))
                self._resubscribe_if_never_joined(join_allowance)
                if self.reposition_needed:
                    continue  # a rebalance ran inside this poll: these records may come from stale positions
                if records and self._input_lost:
                    # The first records of a recreated input topic are read from the position the consumer
                    # had on the lost one, past new events that sit below it: read from the committed offsets.
                    log.warning("stage %s: input topic %s is back; reading it from the committed offsets",
                                self.stage.name, self.settings.topic(self.stage.input_topic))
                    self._input_lost = False
                    self.reposition_needed = True
                    continue
                for tp_records in records.values():
                    for record in tp_records:
                        self._add(record)
                if records:
                    last_input = time.monotonic()
                    metrics.PENDING.labels(self.stage.name).set(len(self._pending))
                due = self._batch_started is not None and time.monotonic() - self._batch_started >= batch_timeout
                # Nothing new for `linger`: no backlog to wait for, so the batch goes now.
                lull = not records and time.monotonic() - last_input >= linger
                if len(self._pending) >= batch_size or (self._pending and (due or lull)):
                    self.flush_pending()
                # Idle time counts from the later of the last input and joining the group (a join takes seconds).
                idle_since = max(last_input, self.assigned_at or last_input + join_allowance)
                if idle_exit_s is not None and not self._pending and time.monotonic() - idle_since > idle_exit_s:
                    break
            if not self.paused:
                self.flush_pending()
        finally:
            self._close()
        return self.stats

    def _wait_paused(self) -> None:
        """Keep the group membership alive without fetching; retry the batch when its backoff ran out."""
        assignment = self._consumer.assignment()
        if assignment:
            self._consumer.pause(*assignment)  # partitions assigned meanwhile start unpaused
        self._poll(timeout_ms=int(min(0.5, max(0.0, self._retry_at - time.monotonic())) * 1000) or 1)
        if self.paused and time.monotonic() >= self._retry_at:
            self.flush_pending()

    def _input_topic_missing(self) -> bool:
        """The broker answered metadata without our input topic: never created, or lost by a restart.

        Read from the consumer's cached metadata (no request). The consumer never creates topics
        itself (``subscribe_without_creating``): Tansu would create one with its own partition count.
        """
        cluster = getattr(getattr(self._consumer, "_client", None), "cluster", None)
        if cluster is None or not cluster.brokers():
            return False  # a test double, or no metadata answer yet
        return cluster.partitions_for_topic(self.settings.topic(self.stage.input_topic)) is None

    def _provision_missing_input(self) -> None:
        """Provision every topic as specified when the input topic is gone, even while idle.

        An idle stage produces nothing, so no failed send tells it that a restarted embedded
        broker (memory storage) lost the topics; its consumer would wait on a topic nobody creates.
        """
        if not self._input_topic_missing():
            self._provision_backoff_s = self.settings.runtime.retry_backoff_ms / 1000
            return
        self._input_lost = True
        now = time.monotonic()
        if now < self._provision_at:
            return
        log.warning("stage %s: input topic %s missing on the broker (restarted?); provisioning the topics",
                    self.stage.name, self.settings.topic(self.stage.input_topic))
        try:
            self._provision_topics()
            self._consumer._client.cluster.request_update()  # see the new topic now, not at the next periodic refresh
        except Exception as err:  # noqa: BLE001 - the broker may still be starting; try again after the backoff
            log.warning("stage %s: provisioning topics failed: %s", self.stage.name, describe(err))
        self._provision_at = now + self._provision_backoff_s
        self._provision_backoff_s = min(self._provision_backoff_s * 2, self.settings.runtime.retry_backoff_max_ms / 1000)

    def _subscribe(self) -> None:
        subscribe_without_creating(self._consumer, self.settings.topic(self.stage.input_topic), listener=_DropOnRevoke(self))
        self._subscribed_at = time.monotonic()

    def _resubscribe_if_never_joined(self, allowance_s: float) -> None:
        """Subscribe again when the first group join has not finished within ``allowance_s``.

        A safety net: a stage's first join on the embedded Tansu broker could hang for minutes (README, Tests: "First
        group join"), caused by kafka-python dropping join rounds that finished between polls
        (``consumers.kafka_group_join`` fixes that); a fresh subscription starts a new join.
        """
        if self.assigned_at is not None or not isinstance(self._consumer, KafkaConsumer):
            return
        if time.monotonic() - self._subscribed_at < allowance_s:
            return
        log.warning("stage %s: not in its group %.0f s after subscribing; subscribing again", self.stage.name, allowance_s)
        self._consumer.unsubscribe()
        self._subscribe()

    def _poll(self, **options):
        records = self._consumer.poll(**options)
        self._rescue_lost_join()
        return records

    def _rescue_lost_join(self) -> None:
        """Work around kafka-python 3.0 losing a finished rebalance, which leaves the stage idle for good.

        When the group leader rejoins because a topic's partition count changed, its own assignment
        clears that condition while the join is still in flight; if ``poll`` times out before the
        SyncGroup answer, no later ``poll`` collects the finished join: the consumer keeps its old
        assignment and never reads the new topic (seen when a restarted embedded broker recreates a
        topic with another partition count). Ask for a new join then.
        """
        coordinator = getattr(self._consumer, "_coordinator", None)
        join = getattr(coordinator, "_join_task", None)
        if join is not None and getattr(join, "is_done", False) and not coordinator.need_rejoin():
            log.warning("stage %s: the Kafka client lost a finished rebalance; joining the group again", self.stage.name)
            coordinator.request_rejoin()

    def _reposition(self) -> None:
        """Read every assigned partition again from its committed offset (from the start when none).

        kafka-python keeps a partition's fetch position when a rebalance hands it back to the same
        member. The batch dropped on revocation would then be skipped, never committed, and lost; and
        after a restart of a broker with memory storage (topics and offsets from 0 again, nothing
        committed) every new event below the old position would be skipped.
        """
        self.reposition_needed = False
        self.drop_pending()  # read again from the committed offsets
        committed = getattr(self._consumer, "committed", None)
        if committed is None:  # a test double positions itself on assignment
            return
        try:
            for tp in self._consumer.assignment():
                offset = committed(tp)
                if offset is None:
                    if self._consumer.config.get("auto_offset_reset") == "latest":
                        self._consumer.seek_to_end(tp)
                    else:
                        self._consumer.seek_to_beginning(tp)
                else:
                    self._consumer.seek(tp, offset)
        except (KafkaError, ValueError) as exc:  # IllegalStateError is a KafkaError
            # The broker is unreachable, or the assignment changed meanwhile: try again shortly.
            log.warning("stage %s: could not read committed offsets (%s); retrying", self.stage.name, describe(exc))
            self.reposition_needed = True
            self._stop.wait(self.settings.runtime.retry_backoff_ms / 1000)

    def _add(self, record) -> None:
        if self._batch_started is None:
            self._batch_started = time.monotonic()
        self._pending.append(
            InMessage(
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                key=record.key,
                value=record.value,
                headers=list(record.headers or []),
                timestamp_ms=record.timestamp,
            )
        )

    def _close(self) -> None:
        timeout = self.settings.kafka.request_timeout_ms / 1000
        if self._producer is not None:
            try:
                self._producer.close(timeout=timeout)
            except Exception as exc:  # noqa: BLE001 - leaving; nothing uncommitted is lost
                log.warning("stage %s: producer close failed: %s", self.stage.name, describe(exc))
        if self._consumer is not None:
            self._consumer.close()  # leaves the group so partitions move at once

    # --- one batch ----------------------------------------------------------

    def flush_pending(self) -> bool:
        """Process, produce, flush and commit the pending batch.

        Returns False when a transient fault kept the batch pending (the stage is then paused).
        """
        if not self._pending:
            return True
        batch = self._pending
        started = self._batch_started or time.monotonic()
        try:
            result = process_batch(self.stage, batch, self.settings.kafka.max_request_size)
            self._produce(result.records)
            self._commit(batch)
        except Exception as exc:
            if not is_transient(exc):
                raise
            self._pause(exc)
            return False
        self._pending, self._batch_started = [], None
        metrics.PENDING.labels(self.stage.name).set(0)
        self._resume()
        self._record(batch, result, started)
        self.stage.on_committed(result)
        return True

    def drop_pending(self) -> None:
        """Forget the uncommitted batch: it will be read again from the last commit."""
        self._pending, self._batch_started = [], None
        metrics.PENDING.labels(self.stage.name).set(0)
        self._resume()

    def _produce(self, records: list[Record]) -> None:
        try:
            futures = [
                self._producer.send(self.settings.topic(r.topic), key=r.key, value=r.value, headers=r.headers)
                for r in records
            ]
            self._producer.flush(timeout=self.settings.kafka.request_timeout_ms / 1000)
            for future in futures:
                future.get(timeout=self.settings.kafka.request_timeout_ms / 1000)  # raises: nothing is committed
        except Exception as exc:
            # A failed producer may hold expired batches or state a restarted broker forgot: start clean.
            self._replace_producer(exc)
            raise

    def _replace_producer(self, exc: BaseException) -> None:
        if needs_new_producer(exc):
            log.warning("stage %s: the broker lost this producer's state (restarted?); creating a new producer", self.stage.name)
        close_now(self._producer)  # else its I/O thread lives on, retrying what it held
        self._producer = self._new_producer()

    def _pause(self, exc: BaseException) -> None:
        self.stats.transient_faults += 1
        metrics.TRANSIENT_FAULTS.labels(self.stage.name).inc()
        if not self.paused:
            self.stats.pauses += 1
            metrics.PAUSED.labels(self.stage.name).set(1)
        else:
            self._backoff_s = min(self._backoff_s * 2, self.settings.runtime.retry_backoff_max_ms / 1000)
        self._retry_at = time.monotonic() + self._backoff_s
        log.warning(
            "stage %s paused: %s; keeping %d uncommitted messages, retry in %.3g s",
            self.stage.name, describe(exc), len(self._pending), self._backoff_s,
        )
        self._reprovision_topics(exc)

    def _reprovision_topics(self, exc: BaseException) -> None:
        """A broker that restarted with memory storage has lost the topics: create what is missing."""
        if not isinstance(exc, KafkaError):
            return
        try:
            self._provision_topics()
        except Exception as err:  # noqa: BLE001 - the broker may still be down; the next retry tries again
            log.debug("stage %s: re-provisioning topics failed: %s", self.stage.name, describe(err))

    def _resume(self) -> None:
        if not self.paused:
            return
        log.info("stage %s resumed", self.stage.name)
        self._retry_at = None
        self._backoff_s = self.settings.runtime.retry_backoff_ms / 1000
        metrics.PAUSED.labels(self.stage.name).set(0)
        paused = self._consumer.paused() if self._consumer is not None else set()
        if paused:
            self._consumer.resume(*paused)

    def _commit(self, batch: list[InMessage]) -> None:
        """Commit the batch's offsets; a commit lost to a rebalance is logged, an outage raises."""
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for message in batch:
            tp = TopicPartition(message.topic, message.partition)
            if tp not in offsets or offsets[tp].offset <= message.offset:
                offsets[tp] = OffsetAndMetadata(message.offset + 1, "", -1)
        try:
            self._consumer.commit(offsets)
        except CommitFailedError:
            # The group rebalanced mid-batch: the new owner re-reads from the last commit (at-least-once).
            log.warning("stage %s: commit failed after a rebalance; the batch may be redelivered", self.stage.name)

    def _record(self, batch: list[InMessage], result: StageResult, started: float) -> None:
        name = self.stage.name
        # Outputs are counted before inputs: a watcher that sees the input count sees their outputs too.
        self.stats.produced_by_topic.update(out.topic for out in result.outputs)
        self.stats.produced += len(result.outputs)
        self.stats.dead_lettered += len(result.dead_letters)
        self.stats.batches += 1
        self.stats.processed += len(batch)
        metrics.PROCESSED.labels(name).inc(len(batch))
        for out in result.outputs:
            metrics.PRODUCED.labels(name, out.topic).inc()
        for dl in result.dead_letters:
            metrics.DEAD_LETTERED.labels(name, dl.reason.value).inc()
        metrics.BATCH_LATENCY.labels(name).observe(time.monotonic() - started)
        for tp in self._consumer.assignment():
            highwater = self._consumer.highwater(tp)
            if highwater is not None:
                metrics.CONSUMER_LAG.labels(name, tp.topic, str(tp.partition)).set(max(0, highwater - self._consumer.position(tp)))
        log.info(
            "stage %s batch: %d in, %d out, %d dead-lettered, %.0f ms",
            name, len(batch), len(result.outputs), len(result.dead_letters), (time.monotonic() - started) * 1000,
        )


def run_stage(stage: Stage, settings: Settings, **run_options) -> RunStats:
    runtime = StreamRuntime(stage, settings)
    runtime.install_signal_handlers()
    return runtime.run(**run_options)

