"""Fixtures for theme, digest and enricher tests: the real model (once per session), headless Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess
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
    """Debian's chromium (and CJK fonts, so the screenshot shows Chinese), installed when missing."""
    if not CHROMIUM.exists():
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        # A fresh machine may have no package lists yet.
        subprocess.run(["apt-get", "update"], check=True, env=env, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "chromium", "fonts-noto-cjk"], check=True, env=env, capture_output=True)
    assert CHROMIUM.exists() and shutil.which(str(CHROMIUM))
    return CHROMIUM
