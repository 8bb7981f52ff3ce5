"""The store's dedup index on SQLite and PostgreSQL: same answers as the pure matcher, and it survives a restart."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from consumers.normalizer.dedup import fingerprint
from consumers.store import make_engine, migrate, schema_version
from consumers.store.dedup_index import SqlDedupIndex
from topics.settings import DedupSettings

SETTINGS = DedupSettings()
T0 = datetime(2026, 11, 16, 9, 0, tzinfo=timezone(timedelta(hours=8)))
COMPLAINT = "外卖送了一个半小时才到，饭菜全凉了，骑手还不接电话，太差了。"
NEAR = COMPLAINT.replace("太差了", "太差劲了")


def fp(event_id: str, text: str, customer: str = "c1", at: datetime = T0):
    return fingerprint(event_id, customer, at, text, SETTINGS)


def open_index(url: str) -> tuple[sa.Engine, SqlDedupIndex]:
    engine = make_engine(url)
    migrate(engine)
    return engine, SqlDedupIndex(engine, SETTINGS)


def test_migration_100_creates_the_index_tables(store_url: str) -> None:
    engine, _ = open_index(store_url)
    try:
        assert schema_version(engine) >= 100
        tables = set(sa.inspect(engine).get_table_names())
        assert {"dedup_fingerprints", "dedup_bands"} <= tables
    finally:
        engine.dispose()


def test_links_survive_a_restart(store_url: str) -> None:
    engine, index = open_index(store_url)
    try:
        assert index.resolve([fp("e1", COMPLAINT), fp("e2", COMPLAINT, at=T0 + timedelta(hours=2))]) == [None, "e1"]
    finally:
        engine.dispose()
    # A new process: a fresh engine and index over the same database.
    engine, index = open_index(store_url)
    try:
        assert index.resolve([
            fp("e3", NEAR, customer="c2", at=T0 + timedelta(hours=3)),
            fp("e4", COMPLAINT, customer="c3", at=T0 + timedelta(days=8)),  # outside the 7-day window
            fp("e5", "希望能增加夜间模式，还有订单能按时间筛选就更好了。"),
            fp("e2", COMPLAINT, at=T0 + timedelta(hours=2)),  # redelivered: same answer as before
        ]) == ["e1", None, None, "e1"]
        assert index.count() == 5
    finally:
        engine.dispose()


def test_time_zones_are_compared_as_instants(store_url: str) -> None:
    engine, index = open_index(store_url)
    try:
        utc = timezone.utc
        # 09:00+08:00 is 01:00Z: 2026-11-23T00:30Z is 6 d 23.5 h later (inside the window), 02:00Z is outside.
        index.resolve([fp("e1", COMPLAINT)])
        outside = fp("e2", COMPLAINT, customer="c9", at=datetime(2026, 11, 23, 2, 0, tzinfo=utc))
        inside = fp("e3", COMPLAINT, customer="c8", at=datetime(2026, 11, 23, 0, 30, tzinfo=utc))
        assert index.resolve([outside]) == [None]
        assert index.resolve([inside]) == ["e1"]
    finally:
        engine.dispose()


def test_prune_forgets_old_fingerprints_and_their_bands(store_url: str) -> None:
    engine, index = open_index(store_url)
    try:
        index.resolve([fp("old", COMPLAINT), fp("new", "希望能增加夜间模式，还有订单能按时间筛选就更好了。", at=T0 + timedelta(days=20))])
        assert index.prune(T0 + timedelta(days=10)) == 1
        assert index.count() == 1
        with engine.connect() as conn:
            bands = conn.execute(sa.text("SELECT DISTINCT event_id FROM dedup_bands")).scalars().all()
        assert bands == ["new"]
    finally:
        engine.dispose()


def test_one_batch_sees_itself_and_a_repeated_id_is_answered_once(store_url: str) -> None:
    engine, index = open_index(store_url)
    try:
        answers = index.resolve([fp("e1", COMPLAINT), fp("e1", COMPLAINT), fp("e2", NEAR, customer="c2"), fp("e3", COMPLAINT)])
        assert answers == [None, None, "e1", "e1"]
        assert index.count() == 3
    finally:
        engine.dispose()
