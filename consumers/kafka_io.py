"""Kafka at the edge: producer and consumer construction, and event production."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaTimeoutError

from consumers import kafka_group_join
from consumers.stage import OutMessage
from topics.admin import BrokerUnreachable
from topics.schemas import Event
from topics.serde import encode, encode_key, make_headers
from topics.settings import Settings

log = logging.getLogger(__name__)

kafka_group_join.install()


def _bootstrapped(client: type, settings: Settings, options: dict):
    """Construct a producer or consumer (kafka-python connects at once): an unreachable broker
    fails within ``kafka.connect_timeout_s`` with the same one line as every command's broker check."""
    try:
        return client(**options)
    except KafkaTimeoutError as exc:
        if "bootstrap" not in str(exc):
            raise
        raise BrokerUnreachable(
            f"Kafka unreachable at {settings.kafka.bootstrap_servers} (no answer within {settings.kafka.connect_timeout_s:g} s)"
        ) from None


def make_producer(settings: Settings, **overrides: object) -> KafkaProducer:
    options = {
        **settings.kafka.client_options(),
        "bootstrap_timeout_ms": int(settings.kafka.connect_timeout_s * 1000),
        # Durability before speed: an event is "sent" only when all in-sync replicas have it.
        "acks": "all",
        "retries": 5,
        "linger_ms": 5,
        "max_in_flight_requests_per_connection": 1,
        # A send to an unreachable broker fails within the request timeout instead of kafka-python's 60 s.
        "max_block_ms": settings.kafka.request_timeout_ms,
        "max_request_size": settings.kafka.max_request_size,
        **overrides,
    }
    producer = _bootstrapped(KafkaProducer, settings, options)
    _never_name_topics(producer._metadata)
    return producer


def _never_name_topics(cluster) -> None:
    """Ask the broker for every topic's metadata instead of the ones this client uses.

    Tansu auto-creates any topic a metadata request names, whatever ``allow_auto_create_topics``
    says, with its own partition count: a client that named a topic a restarted broker lost (memory
    storage) would recreate it before we provision it as specified. A client that never names
    topics leaves them missing until we do (the stage runtime and the ingest provision them).
    kafka-python has no option for this; its consumer sets the same flag for pattern subscriptions.
    """
    cluster.need_all_topic_metadata = True


def close_now(producer: KafkaProducer) -> None:
    """Close a failed producer at once, dropping what it still holds.

    kafka-python's ``close(timeout=0)`` flushes first and raises when batches are still
    incomplete (the broker is gone), leaving its I/O thread running and retrying them:
    then the thread is force-closed, which fails those batches, and the close completes.
    """
    try:
        producer.close(timeout=0)
        return
    except Exception as exc:  # noqa: BLE001 - KafkaTimeoutError: batches still incomplete
        log.debug("failed producer still holds batches (%s); force-closing it", exc)
    sender = getattr(producer, "_sender", None)
    try:
        if sender is not None:
            sender.force_close()
            sender.join(5)
        producer.close(timeout=0)
    except Exception as exc:  # noqa: BLE001 - the producer is thrown away either way
        log.warning("closing a failed producer: %s", exc)


def make_consumer(settings: Settings, group_id: str | None, topics: list[str] | None = None, **overrides: object) -> KafkaConsumer:
    kafka = settings.kafka
    options = {
        **kafka.client_options(),
        "bootstrap_timeout_ms": int(kafka.connect_timeout_s * 1000),
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": kafka.session_timeout_ms,
        "heartbeat_interval_ms": kafka.heartbeat_interval_ms,
        "max_poll_interval_ms": kafka.max_poll_interval_ms,
        "max_poll_records": settings.runtime.batch_size,
        "fetch_max_wait_ms": kafka.fetch_max_wait_ms,
        # Topics are created as specified (topics.admin), never by a reader: Tansu would auto-create
        # a missing one with its own partition count when a restarted broker lost it.
        "allow_auto_create_topics": False,
        **overrides,
    }
    consumer = _bootstrapped(KafkaConsumer, settings, options)
    if topics:
        consumer.subscribe(topics)
    _never_name_topics(consumer._client.cluster)  # after subscribe(), which resets it
    return consumer


def subscribe_without_creating(consumer: KafkaConsumer, topic: str, listener=None) -> None:
    """Subscribe to ``topic`` by an exact pattern, so the consumer's metadata requests never name it.

    A broker that auto-creates what clients name cannot then create it with its own partition count
    after a restart lost it (see ``_never_name_topics``); the stage runtime provisions it as specified.
    Not by name with that flag set: a leader whose subscription did not change gets its previous
    assignment back from Tansu, so a topic created after the first join would never be assigned.
    Test doubles take the name.
    """
    if isinstance(consumer, KafkaConsumer):
        consumer.subscribe(pattern=f"^{re.escape(topic)}$", listener=listener)
    else:
        consumer.subscribe([topic], listener=listener)


def send_event(producer: KafkaProducer, settings: Settings, message: OutMessage):
    """Produce one event with its schema and trace headers; returns the send future."""
    return send(producer, settings.topic(message.topic), message.event, message.key, message.trace_id)


def send(producer: KafkaProducer, physical_topic: str, event: Event, key: str | None, trace_id: str | None = None):
    return producer.send(
        physical_topic,
        key=encode_key(key),
        value=encode(event),
        headers=make_headers(event, trace_id),
    )


def read_topic(settings: Settings, topic: str, timeout_s: float = 30.0, quiet_s: float = 1.0) -> list:
    """Every record currently on ``topic`` (logical name), read without a consumer group.

    Reads until every partition reached its end offset and no record arrived for
    ``quiet_s``: the embedded Tansu answers ListOffsets(latest) with values below
    the real end, so end offsets alone would stop the read early.
    """
    consumer = make_consumer(settings, group_id=None)
    try:
        physical = settings.topic(topic)
        partitions = consumer.partitions_for_topic(physical) or set()
        tps = [TopicPartition(physical, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        records = []
        started = last_record = time.monotonic()
        while any(consumer.position(tp) < end[tp] for tp in tps) or time.monotonic() - last_record < quiet_s:
            if time.monotonic() - started > timeout_s:
                behind = {tp.partition: end[tp] - consumer.position(tp) for tp in tps}
                raise TimeoutError(f"read of {physical} incomplete after {timeout_s}s: records left per partition {behind}")
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
                last_record = time.monotonic()
        return records
    finally:
        consumer.close()


def follow_topic(settings: Settings, topic: str, from_beginning: bool, idle_timeout_s: float | None = None) -> Iterator:
    """Yield a topic's records as they arrive, without a consumer group; stops after ``idle_timeout_s`` without records."""
    consumer = make_consumer(settings, group_id=None)
    try:
        physical = settings.topic(topic)
        partitions = consumer.partitions_for_topic(physical)
        if not partitions:
            raise ValueError(f"topic {physical!r} does not exist")
        tps = [TopicPartition(physical, p) for p in sorted(partitions)]
        consumer.assign(tps)
        (consumer.seek_to_beginning if from_beginning else consumer.seek_to_end)(*tps)
        last = time.monotonic()
        while idle_timeout_s is None or time.monotonic() - last <= idle_timeout_s:
            for batch in consumer.poll(timeout_ms=500).values():
                for record in batch:
                    last = time.monotonic()
                    yield record
    finally:
        consumer.close()
