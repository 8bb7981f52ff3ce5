"""Fixtures of the alerter tests: the shipped rules, a stream with a spike, a migrated store."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from consumers.alerter.rules import TermMatcher, load_rules
from consumers.stage import InMessage
from consumers.store import make_engine, migrate
from pipelines.bench.alert_streams import generate
from tests.alerts.helpers import SPEC, messages


@pytest.fixture(scope="module")
def matcher() -> TermMatcher:
    return TermMatcher(load_rules())


@pytest.fixture(scope="module")
def stream() -> list[InMessage]:
    return messages(generate(SPEC))


@pytest.fixture
def store(store_url: str) -> sa.Engine:
    engine = make_engine(store_url)
    migrate(engine)
    yield engine
    engine.dispose()
