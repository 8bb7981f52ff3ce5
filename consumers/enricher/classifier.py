"""What the enricher needs from the model (models.feedback_model.FeedbackModel fits it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np


class Prediction(Protocol):
    embedding: np.ndarray  # float32, L2-normalised
    issue_probs: dict[str, float]  # every label of the taxonomy
    issue_labels: list[str]  # the labels that apply, primary first
    primary_issue: str
    sentiment: str  # negative | neutral | positive
    sentiment_score: float  # [-1, 1]


class FeedbackClassifier(Protocol):
    version: str

    def predict(self, texts: Sequence[str], batch_size: int = 64) -> list[Prediction]:
        ...
