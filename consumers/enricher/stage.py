"""Enricher stage: normalized feedback → issue types, sentiment, embedding, live theme → enriched + store.

One model pass per batch. Live themes use the model's topic embedding (``theme_embedding``, from
the topic branch of the same pass: models/topic_branch.py), stored beside the classifier embedding
for the weekly themes. A redelivered event (already in the store) keeps its stored theme and moves
no centroid; the store upsert makes it one row.
The model, the store and the live themes are injected.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Protocol

import numpy as np

from consumers.enricher.classifier import FeedbackClassifier, Prediction, theme_vector
from consumers.stage import EventStage, InMessage, OutMessage, StageResult, dead_letter, trace_id_of
from consumers.themes.live import LiveThemes
from consumers.themes.types import Theme
from topics.schemas import (
    AspectSentiment,
    DeadLetterReason,
    EnrichedFeedback,
    IssueType,
    IssueTypeScore,
    NormalizedFeedback,
    Sentiment,
    SentimentLabel,
)
from topics.specs import ENRICHED, NORMALIZED

log = logging.getLogger(__name__)


class EnrichedStore(Protocol):
    def stored_theme_ids(self, event_ids: Sequence[str]) -> dict[str, str | None]: ...

    def write_batch(self, items: Sequence[tuple[EnrichedFeedback, np.ndarray, np.ndarray]], changed_themes: Sequence[Theme]) -> int:
        """Items: (record, classifier embedding, theme embedding)."""


def model_text(event: NormalizedFeedback) -> str:
    """What the model reads: the text, with an e-mail subject in front when the body does not repeat it."""
    text = event.text.strip()
    subject = (event.subject or "").strip()
    if subject and subject not in text:
        return f"{subject}。{text}" if text else subject
    return text


def enriched_from(event: NormalizedFeedback, prediction: Prediction, theme_id: str | None, model_version: str, now: datetime) -> EnrichedFeedback:
    embedding = np.asarray(prediction.embedding)
    if embedding.ndim != 1 or not np.isfinite(embedding).all():
        raise ValueError(f"model returned an unusable embedding of shape {embedding.shape}")
    labels = [IssueType(label) for label in prediction.issue_labels] or [IssueType(prediction.primary_issue)]
    primary = IssueType(prediction.primary_issue)
    if primary in labels:
        labels.remove(primary)
    aspects = getattr(prediction, "aspect_sentiments", None) or {}
    return EnrichedFeedback(
        **event.model_dump(),
        primary_issue=primary,
        issue_types=[primary, *labels],
        issue_scores=[IssueTypeScore(label=IssueType(k), probability=min(1.0, max(0.0, float(v)))) for k, v in prediction.issue_probs.items()],
        sentiment=Sentiment(label=SentimentLabel(prediction.sentiment), score=min(1.0, max(-1.0, float(prediction.sentiment_score)))),
        aspect_sentiments=[AspectSentiment(issue_type=lab, sentiment=SentimentLabel(aspects[lab]))
                           for lab in [primary, *labels] if lab in aspects],
        theme_id=theme_id,
        model_version=model_version,
        enriched_at=now,
    )


class EnricherStage(EventStage[NormalizedFeedback]):
    name = "enricher"
    input_topic = NORMALIZED
    output_topics = (ENRICHED,)
    input_model = NormalizedFeedback

    def __init__(
        self,
        classifier: FeedbackClassifier,
        store: EnrichedStore,
        themes: LiveThemes,
        batch_size: int = 64,
        max_event_bytes: int | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ):
        self.classifier = classifier
        self.store = store
        self.themes = themes
        self.batch_size = batch_size
        self.max_event_bytes = max_event_bytes
        self.clock = clock

    def handle(self, events: list[tuple[InMessage, NormalizedFeedback]]) -> StageResult:
        result = StageResult()
        usable = []
        for message, event in events:
            if model_text(event):
                usable.append((message, event))
            else:
                result.dead_letters.append(dead_letter(self.name, message, DeadLetterReason.schema_invalid, "feedback has no text to classify", event.event_id))
        if not usable:
            return result
        predictions = self.classifier.predict([model_text(e) for _, e in usable], batch_size=self.batch_size)
        if len(predictions) != len(usable):
            raise RuntimeError(f"model returned {len(predictions)} predictions for {len(usable)} texts")
        embeddings = np.stack([np.asarray(p.embedding, dtype=np.float32) for p in predictions])
        topic = np.stack([theme_vector(p) for p in predictions])
        if not np.isfinite(topic).all():
            raise ValueError("model returned an unusable theme embedding")
        stored = self.store.stored_theme_ids([e.event_id for _, e in usable])
        # Only events seen for the first time move centroids; a redelivery keeps its stored theme.
        fresh, seen = [], set(stored)
        for i, (_, event) in enumerate(usable):
            if event.event_id not in seen:  # a duplicate within the batch counts once, too
                fresh.append(i)
                seen.add(event.event_id)
        assignment = self.themes.assign(topic[fresh])
        theme_of = {usable[i][1].event_id: t for i, t in zip(fresh, assignment.theme_ids)}
        now = self.clock()
        enriched = []
        for (message, event), prediction, embedding, vector in zip(usable, predictions, embeddings, topic):
            theme_id = theme_of.get(event.event_id, stored.get(event.event_id))
            enriched.append((message, enriched_from(event, prediction, theme_id, self.classifier.version, now), embedding, vector))
        self.store.write_batch([(e, emb, vec) for _, e, emb, vec in enriched], assignment.changed)
        self.themes.commit(assignment)  # only after the store has it
        for message, event, _, _ in enriched:
            result.outputs.append(OutMessage(ENRICHED, event, event.key(), trace_id_of(message)))
        return result
