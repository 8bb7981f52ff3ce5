"""Sentence vectors from token states: the mask-weighted mean pool and L2 normalisation.

One definition for every path that pools: the torch encoder, the graph exported to ONNX, the
frozen-layer cache and the tuned top layers used in training.
"""

from __future__ import annotations

import numpy as np


def mean_pool(hidden, mask):
    """Mean of ``hidden`` (batch, tokens, dim) over the tokens where ``mask`` (batch, tokens) is 1 (torch)."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1)


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (all-zero rows stay zero)."""
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
