"""Fixtures of the fault tests: a private PostgreSQL the test may stop, the real model."""

from __future__ import annotations

import atexit
from pathlib import Path

import pytest

from tests.faults.pgserver import PrivatePostgres
from tests.themes.conftest import load_real_model


@pytest.fixture
def private_pg(tmp_path: Path) -> PrivatePostgres:
    """A running PostgreSQL of this test alone (never the shared server on 5432): stop()/start()/kill()."""
    server = PrivatePostgres(tmp_path)
    atexit.register(server.close)  # even if the session is interrupted mid-test
    server.start()
    try:
        yield server
    finally:
        server.close()
        atexit.unregister(server.close)


@pytest.fixture(scope="session")
def feedback_model():
    return load_real_model()
