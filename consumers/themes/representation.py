"""The vectors themes are made of: the model's topic embedding, centred.

The model's ``theme_embedding`` is the normalised mean pool of its topic branch (untuned e5 layers
run on the served pass's shared lower layers: models/topic_branch.py). Raw e5 vectors share one
large common direction (every cosine crowds into ~0.8–0.95), so average linkage chains everything
into one blob; taking away the mean vector of real reviews (``data/theme_center.json``, measured on
the labelled calibration reviews by ``themes calibrate --write-center``) and re-normalising spreads
them out (docs/themes.md).
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

CENTER_FILE = "theme_center.json"


def center_path() -> Path:
    return Path(str(resources.files("consumers.themes") / "data" / CENTER_FILE))


@lru_cache(maxsize=1)
def theme_center() -> np.ndarray:
    path = center_path()
    return np.asarray(json.loads(path.read_text(encoding="utf-8"))["center"], dtype=np.float32)


def topic_vectors(raw: np.ndarray, center: np.ndarray | None = None) -> np.ndarray:
    """Centred, L2-normalised topic vectors from the model's raw theme embeddings (n, d) or (d,)."""
    x = np.asarray(raw, dtype=np.float32)
    c = theme_center() if center is None else center
    if x.shape[-1] != c.shape[0]:
        raise ValueError(f"theme embedding of dimension {x.shape[-1]}, centre of {c.shape[0]}")
    x = x - c
    return (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)).astype(np.float32)
