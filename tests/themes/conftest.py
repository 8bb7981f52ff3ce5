"""Fixtures for theme, digest and enricher tests: the real model (once per session), headless Chromium."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")


def load_real_model():
    """The production model exactly as the enricher loads it (cached per process)."""
    from pipelines.enrichment import production_model
    from topics.settings import Settings

    return production_model(Settings())


@pytest.fixture(scope="session")
def feedback_model():
    return load_real_model()


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's chromium with CJK fonts (so the screenshot shows Chinese); `make test` installs both."""
    if not (CHROMIUM.exists() and shutil.which(str(CHROMIUM))):
        pytest.fail(f"{CHROMIUM} is missing: `make system-deps` installs Debian's chromium and fonts-noto-cjk")
    return CHROMIUM
