"""Normalizer stage: validate raw events and turn them into normalized feedback."""

from __future__ import annotations

from consumers.stage import EventStage, InMessage, OutMessage, StageResult, dead_letter, trace_id_of
from topics.schemas import DeadLetterReason, EmailPayload, NormalizedFeedback, RawFeedback
from topics.specs import NORMALIZED, RAW


class PayloadError(ValueError):
    """The event is valid but its channel payload cannot be decoded."""


def payload_text(event: RawFeedback) -> tuple[str, str | None]:
    """The feedback text and subject carried by the payload."""
    payload = event.payload
    if isinstance(payload, EmailPayload):
        if payload.body:
            return payload.body, payload.subject
        if payload.subject and not payload.mime_base64:
            return payload.subject, payload.subject
        raise PayloadError("MIME decoding is not available in this stage")
    return payload.text, None


def normalize(event: RawFeedback) -> NormalizedFeedback:
    text, subject = payload_text(event)
    return NormalizedFeedback(
        event_id=event.event_id,
        channel=event.channel,
        source=event.source,
        received_at=event.received_at,
        customer=event.customer,
        text=text.strip(),
        subject=subject,
        metadata=event.metadata,
    )


class NormalizerStage(EventStage[RawFeedback]):
    name = "normalizer"
    input_topic = RAW
    output_topics = (NORMALIZED,)
    input_model = RawFeedback

    def __init__(self, max_event_bytes: int | None = None):
        self.max_event_bytes = max_event_bytes

    def handle(self, events: list[tuple[InMessage, RawFeedback]]) -> StageResult:
        result = StageResult()
        for message, event in events:
            try:
                normalized = normalize(event)
            except PayloadError as exc:
                result.dead_letters.append(
                    dead_letter(self.name, message, DeadLetterReason.decode_failed, str(exc), event.event_id)
                )
                continue
            result.outputs.append(OutMessage(NORMALIZED, normalized, normalized.key(), trace_id_of(message)))
        return result
