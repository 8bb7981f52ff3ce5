"""Shared fixtures: the real embedded broker (session-scoped), settings pointing at it, stores."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# Prefect logs its temporary server's shutdown at exit, after pytest closed the captured streams.
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
# The suite serves more model versions from one model folder than production keeps ONNX builds of;
# pruning them would rebuild each (≈ 80 s) when the next test needs it (pruning: tests/models/test_onnx_int8.py).
os.environ.setdefault("FEEDBACK_MINER_MODEL__ONNX_BUILDS_KEPT", "50")
# Before any test module imports Prefect: pipelines.flows sets Prefect's start-up wait, read at import.
import pipelines.flows  # noqa: E402,F401

from topics.embedded import EmbeddedBroker  # noqa: E402
from topics.settings import Settings  # noqa: E402

POSTGRES_URL = os.environ.get("FEEDBACK_MINER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def broker(tmp_path_factory) -> EmbeddedBroker:
    """One real Kafka-protocol broker for the whole test session."""
    log_path = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_path=log_path) as running:
        yield running


@pytest.fixture
def own_broker(tmp_path: Path) -> EmbeddedBroker:
    """A broker of this test alone, to restart (on the same port) or freeze; the session broker is shared."""
    broker = EmbeddedBroker(log_path=tmp_path / "tansu.log")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def kafka_settings(broker: EmbeddedBroker, tmp_path: Path) -> Settings:
    """Settings on the shared broker, isolated per test by a unique topic prefix and group prefix."""
    from topics.admin import ensure_topics

    unique = uuid.uuid4().hex[:8]
    settings = Settings(
        kafka={
            "bootstrap_servers": broker.bootstrap_servers,
            "topic_prefix": f"t{unique}.",
            "group_prefix": f"g{unique}",
        },
        runtime={"batch_size": 16, "batch_timeout_ms": 200},
        store={"url": f"sqlite:///{tmp_path / 'store.db'}"},
        data_dir=tmp_path,
    )
    ensure_topics(settings)
    return settings


def pytest_collection_modifyitems(items) -> None:
    """Mark every test by what it needs, from the fixtures it uses (``make test-fast`` skips the model)."""
    needs = {"feedback_model": "model", "broker": "broker"}
    for item in items:
        for fixture, marker in needs.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(marker)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request, tmp_path: Path) -> str:
    """A fresh database per test: a SQLite file, or a fresh schema in the local PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    # search_path makes every unqualified table land in the test's own schema.
    yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()
