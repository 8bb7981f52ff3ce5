"""Engine construction and the versioned migration runner.

Migrations are modules ``consumers/store/migrations/mNNNN_<name>.py``, each
defining ``VERSION: int``, ``DESCRIPTION: str`` and ``upgrade(conn)``. They run
in version order, each in its own transaction, and are recorded in
``schema_migrations``; running ``migrate`` again applies only new ones.

Stages started together on a fresh store all migrate at once: the whole run
holds a lock (a PostgreSQL advisory lock; on SQLite a lock file beside the
database), so one instance migrates and the others find the work done.
"""

from __future__ import annotations

import fcntl
import importlib
import logging
import pkgutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType

from sqlalchemy import Column, Connection, DateTime, Engine, Integer, MetaData, String, Table, create_engine, event, select, text

log = logging.getLogger(__name__)

_meta = MetaData()
schema_migrations = Table(
    "schema_migrations",
    _meta,
    Column("version", Integer, primary_key=True),
    Column("description", String(200), nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, future=True, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        # WAL lets readers (digest, CLI) work while a stage writes; foreign keys are off by default.
        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.close()

    return engine


def upsert(conn: Connection, table: Table, rows: list[dict], keys: Sequence[str]) -> None:
    """INSERT … ON CONFLICT (keys) DO UPDATE the rows' other columns, in SQLite's or PostgreSQL's dialect."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        raise RuntimeError(f"unsupported database dialect {conn.dialect.name!r} (SQLite or PostgreSQL)")
    stmt = insert(table)
    update = {c: stmt.excluded[c] for c in rows[0] if c not in keys}
    conn.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=update), rows)


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    module: ModuleType


def discover_migrations() -> list[Migration]:
    from consumers.store import migrations as package

    found = []
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("m"):
            module = importlib.import_module(f"{package.__name__}.{info.name}")
            found.append(Migration(module.VERSION, module.DESCRIPTION, module))
    versions = [m.version for m in found]
    if len(versions) != len(set(versions)):
        raise RuntimeError(f"duplicate migration versions: {sorted(versions)}")
    return sorted(found, key=lambda m: m.version)


def schema_version(engine: Engine) -> int:
    _meta.create_all(engine, tables=[schema_migrations])
    with engine.connect() as conn:
        versions = conn.execute(select(schema_migrations.c.version)).scalars().all()
    return max(versions, default=0)


# Any fixed 64-bit number: the advisory lock id of this project's migrations.
_PG_MIGRATION_LOCK = 0x66656564626B6D67


@contextmanager
def migration_lock(engine: Engine) -> Iterator[None]:
    """Serialise migration runs of every process on this store."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _PG_MIGRATION_LOCK})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _PG_MIGRATION_LOCK})
                conn.commit()
        return
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield  # an in-memory database lives in one process
        return
    with open(Path(database).expanduser().with_name(Path(database).name + ".migrate-lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def migrate(engine: Engine) -> list[int]:
    """Apply every migration not yet applied; returns the versions applied now."""
    with migration_lock(engine):
        return _migrate_locked(engine)


def _migrate_locked(engine: Engine) -> list[int]:
    _meta.create_all(engine, tables=[schema_migrations])
    applied_now = []
    with engine.connect() as conn:
        done = set(conn.execute(select(schema_migrations.c.version)).scalars())
    for migration in discover_migrations():
        if migration.version in done:
            continue
        with engine.begin() as conn:
            migration.module.upgrade(conn)
            conn.execute(
                schema_migrations.insert().values(
                    version=migration.version, description=migration.description, applied_at=datetime.now(timezone.utc)
                )
            )
        log.info("store migrated to version %d: %s", migration.version, migration.description)
        applied_now.append(migration.version)
    return applied_now
