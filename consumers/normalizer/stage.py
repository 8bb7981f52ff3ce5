"""Normalizer stage: validate raw events and turn them into normalized, redacted, de-duplicated feedback."""

from __future__ import annotations

import logging

from consumers.normalizer.dedup import DedupIndex, DedupUnavailable, fingerprint
from consumers.normalizer.pipeline import PayloadError, normalize
from consumers.stage import EventStage, InMessage, OutMessage, StageResult, dead_letter, trace_id_of
from topics.schemas import DeadLetterReason, NormalizedFeedback, RawFeedback
from topics.settings import ChannelSettings
from topics.specs import NORMALIZED, RAW

__all__ = ["NormalizerStage", "PayloadError", "normalize"]

log = logging.getLogger(__name__)


class NormalizerStage(EventStage[RawFeedback]):
    """Duplicates are still forwarded (they count for volume) with ``duplicate_of`` set."""

    name = "normalizer"
    input_topic = RAW
    output_topics = (NORMALIZED,)
    input_model = RawFeedback

    def __init__(
        self,
        max_event_bytes: int | None = None,
        settings: ChannelSettings | None = None,
        dedup_index: DedupIndex | None = None,
    ):
        self.max_event_bytes = max_event_bytes
        self.settings = settings or ChannelSettings()
        self._pseudonym_key = self.settings.pseudonym_key.get_secret_value()
        if self._pseudonym_key == ChannelSettings.model_fields["pseudonym_key"].default.get_secret_value():
            log.warning(
                "normalizer: customer-id pseudonyms use the built-in local key; "
                "set FEEDBACK_MINER_CHANNELS__PSEUDONYM_KEY to a secret in production"
            )
        # Without an index (tools, tests of the pure logic) nothing is marked as a duplicate.
        self.dedup_index = dedup_index if self.settings.dedup.enabled else None

    def handle(self, events: list[tuple[InMessage, RawFeedback]]) -> StageResult:
        result = StageResult()
        done: list[tuple[InMessage, NormalizedFeedback]] = []
        for message, event in events:
            try:
                done.append((message, normalize(event, self.settings.normalize, self._pseudonym_key)))
            except PayloadError as exc:
                result.dead_letters.append(
                    dead_letter(self.name, message, DeadLetterReason.decode_failed, str(exc), event.event_id)
                )
        if self.dedup_index is not None and done:
            dedup = self.settings.dedup
            prints = [fingerprint(n.event_id, n.customer.id, n.received_at, n.text, dedup) for _, n in done]
            try:
                links = self.dedup_index.resolve(prints)
            except DedupUnavailable as exc:
                # Nothing is lost: events go on unlinked and marked, rather than to the dead-letter topic.
                log.warning("normalizer: %s; forwarding %d events without dedup", exc, len(done))
                done = [(m, n.model_copy(update={"flags": [*n.flags, "dedup_unavailable"]})) for m, n in done]
            else:
                done = [
                    (message, normalized.model_copy(update={"duplicate_of": link}) if link else normalized)
                    for (message, normalized), link in zip(done, links)
                ]
        for message, normalized in done:
            result.outputs.append(OutMessage(NORMALIZED, normalized, normalized.key(), trace_id_of(message)))
        return result
