"""A small stand-in for the model, so the enricher stage's own logic is tested without loading it.

It fits the ``FeedbackClassifier`` protocol: texts about the same topic (by a
keyword) get nearly the same unit embedding, so they share a live theme as real
paraphrases do; the real model is exercised by one test in test_stage.py and by
the broker and main-job tests.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from topics.schemas import IssueType

DIM = 384
# keyword → (topic direction, primary issue, sentiment, score)
TOPICS = {
    "外卖": (0, IssueType.logistics, "negative", -0.8),
    "闪退": (1, IssueType.technical, "negative", -0.7),
    "好评": (2, IssueType.praise, "positive", 0.9),
}


@dataclass
class FakePrediction:
    embedding: np.ndarray = field(repr=False)
    issue_probs: dict[str, float]
    issue_labels: list[str]
    primary_issue: str
    sentiment: str
    sentiment_score: float


class KeywordClassifier:
    version = "keyword-fake-1"

    def __init__(self) -> None:
        self.calls: list[int] = []

    def predict(self, texts: Sequence[str], batch_size: int = 64) -> list[FakePrediction]:
        self.calls.append(len(texts))
        return [self._one(text) for text in texts]

    def _one(self, text: str) -> FakePrediction:
        direction, issue, sentiment, score = next(
            (topic for keyword, topic in TOPICS.items() if keyword in text), (3, IssueType.other, "neutral", 0.0)
        )
        # A small, text-specific wobble around the topic's direction: paraphrases stay close (cosine ≈ 0.99).
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
        embedding = np.random.default_rng(seed).normal(0, 0.005, DIM).astype(np.float32)
        embedding[direction] += 1.0
        embedding /= np.linalg.norm(embedding)
        probs = {label.value: (0.9 if label == issue else 0.01) for label in IssueType}
        return FakePrediction(embedding, probs, [issue.value], issue.value, sentiment, score)
