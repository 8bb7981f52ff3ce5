"""Softmax regression pieces shared by the sentiment and issue-type heads."""

from __future__ import annotations

import numpy as np


def softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=1, keepdims=True)


def fit_multinomial(X, y: np.ndarray, k: int, C: float, class_weight: str | None = "balanced") -> tuple[np.ndarray, np.ndarray]:
    """(weight (k, dim), bias (k,)) of a softmax regression over class indices ``0..k-1``;
    classes absent from ``y`` get a bias that keeps them from ever being chosen."""
    from sklearn.linear_model import LogisticRegression

    W = np.zeros((k, X.shape[1]), np.float32)
    b = np.full(k, -30.0, np.float32)
    present = np.unique(y)
    if len(present) > 1:
        m = LogisticRegression(C=C, max_iter=3000, class_weight=class_weight).fit(X, y)
        coef, intercept = (m.coef_, m.intercept_) if len(present) > 2 else (
            np.stack([-m.coef_[0], m.coef_[0]]) / 2, np.array([-m.intercept_[0], m.intercept_[0]]) / 2)
        W[present], b[present] = coef, intercept
    else:
        b[present] = 0.0
    return W, b
