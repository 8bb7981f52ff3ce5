"""The enricher tests share the real model with the theme tests (loaded once per session)."""

from __future__ import annotations

import pytest

from tests.themes.conftest import load_real_model


@pytest.fixture(scope="session")
def feedback_model():
    return load_real_model()
