"""Pure stage logic: messages in, events out. No Kafka here.

A stage turns a batch of input messages into output events per topic plus
dead-letter entries. ``process_batch`` adds the failure policy shared by all
stages: a batch that raises is retried message by message, and a message that
still fails becomes a dead letter. Serialisation of the outputs happens inside
that boundary, so an event that cannot be written is the message's failure,
never the stage's. A transient fault (``consumers.faults``) is re-raised
instead: it is not the message's fault, and the runtime keeps the batch and
retries. Nothing is dropped silently.
"""

from __future__ import annotations

import base64
import logging
import traceback
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from consumers.faults import is_transient
from topics.schemas import DeadLetter, DeadLetterReason, Event
from topics.specs import DEADLETTER
from topics.serde import DecodeError, Headers, decode, encode, encode_key, headers_dict, make_headers

log = logging.getLogger(__name__)

E = TypeVar("E", bound=Event)


@dataclass(frozen=True)
class InMessage:
    """One consumed record, as the broker delivered it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers = field(default_factory=list)
    timestamp_ms: int | None = None


@dataclass(frozen=True)
class OutMessage:
    """One event to produce; ``topic`` is the logical topic name (before any prefix)."""

    topic: str
    event: Event
    key: str | None = None
    trace_id: str | None = None


@dataclass(frozen=True)
class Record:
    """One serialised output, ready for the producer; ``topic`` is the logical name."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Headers


@dataclass
class StageResult:
    outputs: list[OutMessage] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    # Filled by ``process_batch``: outputs then dead letters, serialised.
    records: list[Record] = field(default_factory=list)

    def extend(self, other: StageResult) -> None:
        self.outputs.extend(other.outputs)
        self.dead_letters.extend(other.dead_letters)
        self.records.extend(other.records)


class Stage(ABC):
    """A pure stream stage."""

    name: str
    input_topic: str
    output_topics: tuple[str, ...] = ()

    @abstractmethod
    def process(self, messages: list[InMessage]) -> StageResult:
        """Turn a batch into outputs and dead letters. May raise: the runtime retries per message."""

    def on_committed(self, result: StageResult) -> None:
        """Called after every output of ``result`` was acknowledged and the batch's offsets committed."""


def dead_letter(
    stage: str,
    message: InMessage,
    reason: DeadLetterReason | str,
    error: str,
    event_id: str | None = None,
) -> DeadLetter:
    return DeadLetter(
        stage=stage,
        reason=DeadLetterReason(reason),
        # The error may quote the bad input (lone surrogates included): keep it encodable.
        error=error[:4000].encode("utf-8", "backslashreplace").decode("utf-8"),
        source_topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key_base64=base64.b64encode(message.key).decode() if message.key is not None else None,
        original_base64=base64.b64encode(message.value or b"").decode(),
        headers=headers_dict(message.headers),
        event_id=event_id,
    )


def trace_id_of(message: InMessage) -> str | None:
    return headers_dict(message.headers).get("trace_id")


class EventStage(Stage, Generic[E]):
    """A stage that reads one event type: decoding failures become precise dead letters.

    Subclasses implement ``handle``, which receives decoded events with their
    source messages and returns the outputs.
    """

    input_model: type[E]
    max_event_bytes: int | None = None

    def process(self, messages: list[InMessage]) -> StageResult:
        result = StageResult()
        decoded: list[tuple[InMessage, E]] = []
        for message in messages:
            try:
                decoded.append((message, decode(self.input_model, message.value, message.headers, self.max_event_bytes)))
            except DecodeError as exc:
                result.dead_letters.append(dead_letter(self.name, message, exc.reason, str(exc)))
        if decoded:
            result.extend(self.handle(decoded))
        return result

    @abstractmethod
    def handle(self, events: list[tuple[InMessage, E]]) -> StageResult:
        ...


class OutputTooLarge(ValueError):
    """An output event the producer would refuse (over ``kafka.max_request_size``)."""


def serialise(result: StageResult, messages: list[InMessage], max_record_bytes: int | None = None) -> StageResult:
    """Encode every output and dead letter into ``result.records``; raises if one cannot be encoded or is too large."""
    traces = {(m.topic, m.partition, m.offset): trace_id_of(m) for m in messages}
    records = [Record(out.topic, encode_key(out.key), encode(out.event), make_headers(out.event, out.trace_id)) for out in result.outputs]
    for record in records:
        if max_record_bytes is not None and len(record.value) > max_record_bytes:
            raise OutputTooLarge(f"output event of {len(record.value)} bytes on {record.topic}, the producer's limit is {max_record_bytes}")
    for dl in result.dead_letters:
        trace = traces.get((dl.source_topic, dl.partition, dl.offset))
        records.append(Record(DEADLETTER, encode_key(dl.key()), encode(dl), make_headers(dl, trace)))
    result.records = records
    return result


def _failure_reason(exc: BaseException) -> DeadLetterReason:
    # Decoding caps depth up front; a stage that still recurses too deep names the cause all the same.
    if isinstance(exc, RecursionError):
        return DeadLetterReason.too_deep
    return DeadLetterReason.too_large if isinstance(exc, OutputTooLarge) else DeadLetterReason.processing_error


def process_batch(stage: Stage, messages: list[InMessage], max_record_bytes: int | None = None) -> StageResult:
    """Run ``stage`` on a batch and serialise what it made.

    On failure retry each message alone, dead-lettering the ones that still
    fail. A transient fault propagates: the caller keeps the batch and retries.
    """
    if not messages:
        return StageResult()
    try:
        return serialise(stage.process(messages), messages, max_record_bytes)
    except Exception as exc:  # noqa: BLE001 - any failure of stage logic is handled per message below
        if is_transient(exc):
            raise
        log.warning("stage %s failed on a batch of %d; retrying per message", stage.name, len(messages), exc_info=True)
    result = StageResult()
    for message in messages:
        try:
            result.extend(serialise(stage.process([message]), [message], max_record_bytes))
        except Exception as exc:  # noqa: BLE001
            if is_transient(exc):
                raise
            error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}"
            log.error("stage %s dead-letters %s[%d]@%d: %s", stage.name, message.topic, message.partition, message.offset, str(exc)[:200])
            result.extend(serialise(StageResult(dead_letters=[dead_letter(stage.name, message, _failure_reason(exc), error)]), [message]))
    return result
