"""Pure stage logic: messages in, events out. No Kafka here.

A stage turns a batch of input messages into output events per topic plus
dead-letter entries. ``process_batch`` adds the failure policy shared by all
stages: a batch that raises is retried message by message, and a message that
still fails becomes a dead letter. Nothing is dropped silently.
"""

from __future__ import annotations

import base64
import logging
import traceback
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from topics.schemas import DeadLetter, DeadLetterReason, Event
from topics.serde import DecodeError, Headers, decode, headers_dict

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


@dataclass
class StageResult:
    outputs: list[OutMessage] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)

    def extend(self, other: StageResult) -> None:
        self.outputs.extend(other.outputs)
        self.dead_letters.extend(other.dead_letters)


class Stage(ABC):
    """A pure stream stage."""

    name: str
    input_topic: str
    output_topics: tuple[str, ...] = ()

    @abstractmethod
    def process(self, messages: list[InMessage]) -> StageResult:
        """Turn a batch into outputs and dead letters. May raise: the runtime retries per message."""


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
        error=error[:4000],
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


def process_batch(stage: Stage, messages: list[InMessage]) -> StageResult:
    """Run ``stage`` on a batch; on failure retry each message alone, dead-lettering the ones that still fail."""
    if not messages:
        return StageResult()
    try:
        return stage.process(messages)
    except Exception:  # noqa: BLE001 - any failure of stage logic is handled per message below
        log.warning("stage %s failed on a batch of %d; retrying per message", stage.name, len(messages), exc_info=True)
    result = StageResult()
    for message in messages:
        try:
            result.extend(stage.process([message]))
        except Exception as exc:  # noqa: BLE001
            error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}"
            log.error("stage %s dead-letters %s[%d]@%d: %s", stage.name, message.topic, message.partition, message.offset, exc)
            result.dead_letters.append(dead_letter(stage.name, message, DeadLetterReason.processing_error, error))
    return result
