"""What the enricher needs from the model (models.feedback_model.FeedbackModel fits it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from consumers.themes.representation import topic_vectors


class Prediction(Protocol):
    embedding: np.ndarray  # float32, L2-normalised
    issue_probs: dict[str, float]  # every label of the taxonomy
    issue_labels: list[str]  # the labels that apply, primary first
    primary_issue: str
    sentiment: str  # negative | neutral | positive
    sentiment_score: float  # [-1, 1]
    # Optional: the topic embedding themes cluster on (float32, L2-normalised); without it the
    # enricher falls back to ``embedding``.
    # theme_embedding: np.ndarray | None
    # Optional: {label: negative | neutral | positive} for the labels of issue_labels (aspect sentiment).
    # aspect_sentiments: dict[str, str]


def theme_vector(prediction: Prediction) -> np.ndarray:
    """The vector live and weekly themes use: the prediction's topic embedding, centred
    (consumers.themes.representation); a model without one gives its embedding as is."""
    vector = getattr(prediction, "theme_embedding", None)
    if vector is None:
        return np.asarray(prediction.embedding, dtype=np.float32)
    return topic_vectors(vector)


class FeedbackClassifier(Protocol):
    version: str

    def predict(self, texts: Sequence[str], batch_size: int = 64) -> list[Prediction]:
        ...
