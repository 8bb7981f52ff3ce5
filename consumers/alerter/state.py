"""Alerter state in the store (SQLite or PostgreSQL), shared safely by several instances.

Each batch runs inside one transaction that first takes the alerter lock row
(``UPDATE alerter_meta … WHERE name = 'lock'``: a row lock on PostgreSQL, the
write lock on SQLite) and bumps its version. Holding the lock, the instance
loads every state row written by others since the version it last saw, runs
the batch on its in-memory state, and writes back what changed, stamped with
the new version. Batches of all instances are thus serialised over one shared
state: counts stay global however the enriched topic's partitions are spread.

Offsets of processed messages are stored in the same transaction, so a batch
redelivered after a crash (state committed, Kafka offsets not) is not counted
twice: its messages are skipped and the alerts they caused, kept in
``alert_events``, are published again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from consumers.alerter.engine import AlertEngine
from consumers.alerter.spikes import Bucket
from consumers.alerter.suppression import AlertState
from consumers.stage import InMessage
from topics.schemas import Alert

log = logging.getLogger(__name__)

_meta = sa.MetaData()
alerter_meta = sa.Table(
    "alerter_meta", _meta,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text),
    sa.Column("version", sa.BigInteger, nullable=False),
)
alerter_buckets = sa.Table(
    "alerter_buckets", _meta,
    sa.Column("series", sa.String(400), primary_key=True),
    sa.Column("bucket", sa.BigInteger, primary_key=True),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("score_sum", sa.Float, nullable=False),
    sa.Column("score_sq", sa.Float, nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
)
alerter_alert_state = sa.Table(
    "alerter_alert_state", _meta,
    sa.Column("kind", sa.String(30), primary_key=True),
    sa.Column("key", sa.String(400), primary_key=True),
    sa.Column("alert_id", sa.String(64), nullable=False),
    sa.Column("is_open", sa.Boolean, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("deleted", sa.Boolean, nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
)
alerter_offsets = sa.Table(
    "alerter_offsets", _meta,
    sa.Column("topic", sa.String(300), primary_key=True),
    sa.Column("partition", sa.Integer, primary_key=True),
    sa.Column("next_offset", sa.BigInteger, nullable=False),
)
alert_events = sa.Table(
    "alert_events", _meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("alert_id", sa.String(64), nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(30), nullable=False),
    sa.Column("key", sa.String(400), nullable=False),
    sa.Column("priority", sa.String(2), nullable=False),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
    sa.Column("emitted_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("source_topic", sa.String(300)),
    sa.Column("source_partition", sa.Integer),
    sa.Column("source_offset", sa.BigInteger),
    sa.Column("event", sa.Text, nullable=False),
)

LOCK = "lock"


def _upsert(conn: sa.Connection, table: sa.Table, rows: list[dict], keys: list[str]) -> None:
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise RuntimeError(f"unsupported database {conn.dialect.name}")
    stmt = insert(table)
    stmt = stmt.on_conflict_do_update(index_elements=keys, set_={c: stmt.excluded[c] for c in rows[0] if c not in keys})
    conn.execute(stmt, rows)


@dataclass
class Batch:
    """What one transaction learns and records beside the engine state."""

    conn: sa.Connection
    next_offsets: dict[tuple[str, int], int]
    advanced: dict[tuple[str, int], int] = field(default_factory=dict)
    logged: list[tuple[Alert, InMessage]] = field(default_factory=list)

    def already_processed(self, message: InMessage) -> bool:
        return message.offset < self.next_offsets.get((message.topic, message.partition), -1)

    def done(self, message: InMessage) -> None:
        tp = (message.topic, message.partition)
        self.advanced[tp] = max(self.advanced.get(tp, -1), message.offset + 1)

    def log(self, alert: Alert, message: InMessage) -> None:
        self.logged.append((alert, message))

    def replayed_alerts(self, message: InMessage) -> list[Alert]:
        """The alerts a message caused when it was first processed, in order."""
        rows = self.conn.execute(
            sa.select(alert_events.c.event)
            .where(alert_events.c.source_topic == message.topic)
            .where(alert_events.c.source_partition == message.partition)
            .where(alert_events.c.source_offset == message.offset)
            .order_by(alert_events.c.id)
        ).scalars()
        return [Alert.model_validate_json(row) for row in rows]


class AlertStateStore:
    """Loads and saves an ``AlertEngine``'s state; one per alerter instance."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine
        self._synced: int | None = None  # the state version this instance's memory reflects
        self._ensure_lock_row()

    def _ensure_lock_row(self) -> None:
        with self.engine.begin() as conn:
            if conn.execute(sa.select(alerter_meta.c.name).where(alerter_meta.c.name == LOCK)).first():
                return
        try:
            with self.engine.begin() as conn:
                conn.execute(alerter_meta.insert().values(name=LOCK, value=None, version=0))
        except IntegrityError:
            pass  # another instance created it first

    @contextmanager
    def batch(self, alert_engine: AlertEngine, topics_partitions: set[tuple[str, int]]) -> Iterator[Batch]:
        """One serialised batch: lock, catch up with other instances, run, save."""
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.update(alerter_meta).where(alerter_meta.c.name == LOCK).values(version=alerter_meta.c.version + 1))
                version = conn.execute(sa.select(alerter_meta.c.version).where(alerter_meta.c.name == LOCK)).scalar_one()
                if self._synced is None:
                    self._load(conn, alert_engine, since=None)
                elif self._synced != version - 1:
                    self._load(conn, alert_engine, since=self._synced)
                batch = Batch(conn, self._offsets(conn, topics_partitions))
                yield batch
                self._save(conn, alert_engine, version, batch)
        except BaseException:
            # Memory may hold changes that were rolled back: reload everything next time.
            self._synced = None
            raise
        self._synced = version

    # --- loading -------------------------------------------------------------------

    def _offsets(self, conn: sa.Connection, tps: set[tuple[str, int]]) -> dict[tuple[str, int], int]:
        out = {}
        for topic, partition in tps:
            value = conn.execute(
                sa.select(alerter_offsets.c.next_offset)
                .where(alerter_offsets.c.topic == topic, alerter_offsets.c.partition == partition)
            ).scalar()
            if value is not None:
                out[(topic, partition)] = value
        return out

    def _load(self, conn: sa.Connection, alert_engine: AlertEngine, since: int | None) -> None:
        detector, book = alert_engine.detector, alert_engine.book
        if since is None:
            detector.counts.buckets.clear()
            book.states.clear()
            detector.stream_start, detector.watermark = None, None
        detector.counts.dirty.clear()
        book.dirty.clear()
        meta = {row.name: row.value for row in conn.execute(sa.select(alerter_meta))}
        if meta.get("stream_start") is not None:
            detector.stream_start = int(meta["stream_start"])
        if meta.get("watermark") is not None:
            detector.watermark = datetime.fromisoformat(meta["watermark"])
        query = sa.select(alerter_buckets)
        if since is not None:
            query = query.where(alerter_buckets.c.version > since)
        loaded = 0
        for row in conn.execute(query):
            detector.counts.put(row.series, row.bucket, Bucket(row.count, row.score_sum, row.score_sq))
            loaded += 1
        query = sa.select(alerter_alert_state)
        if since is not None:
            query = query.where(alerter_alert_state.c.version > since)
        for row in conn.execute(query):
            if row.deleted:
                book.states.pop((row.kind, row.key), None)
            else:
                book.put(AlertState.from_json(json.loads(row.state)))
        log.info("alerter state loaded (%s): %d buckets, %d alert states", "full" if since is None else f"since v{since}", loaded, len(book.states))

    # --- saving --------------------------------------------------------------------

    def _save(self, conn: sa.Connection, alert_engine: AlertEngine, version: int, batch: Batch) -> None:
        detector, book = alert_engine.detector, alert_engine.book
        detector.prune()
        meta_rows = []
        if detector.stream_start is not None:
            meta_rows.append({"name": "stream_start", "value": str(detector.stream_start), "version": version})
        if detector.watermark is not None:
            meta_rows.append({"name": "watermark", "value": detector.watermark.isoformat(), "version": version})
        _upsert(conn, alerter_meta, meta_rows, ["name"])
        bucket_rows = []
        for series, bucket in sorted(detector.counts.dirty):
            value = detector.counts.buckets.get(series, {}).get(bucket)
            if value is not None:
                bucket_rows.append({"series": series, "bucket": bucket, "count": value.count,
                                    "score_sum": value.score_sum, "score_sq": value.score_sq, "version": version})
        _upsert(conn, alerter_buckets, bucket_rows, ["series", "bucket"])
        detector.counts.dirty.clear()
        if detector.watermark is not None:
            oldest = detector.bucket_of(detector.watermark) - detector.config.horizon_buckets
            conn.execute(sa.delete(alerter_buckets).where(alerter_buckets.c.bucket < oldest))
        state_rows = []
        for kind, key in sorted(book.dirty):
            state = book.states.get((kind, key))
            state_rows.append({
                "kind": kind, "key": key, "alert_id": state.alert_id if state else "",
                "is_open": bool(state and state.open), "state": json.dumps(state.to_json(), ensure_ascii=False) if state else "{}",
                "deleted": state is None, "version": version,
            })
        _upsert(conn, alerter_alert_state, state_rows, ["kind", "key"])
        book.dirty.clear()
        _upsert(conn, alerter_offsets, [
            {"topic": t, "partition": p, "next_offset": o} for (t, p), o in sorted(batch.advanced.items())
        ], ["topic", "partition"])
        if batch.logged:
            conn.execute(alert_events.insert(), [
                {
                    "alert_id": a.alert_id, "revision": a.revision, "kind": a.kind.value, "key": a.key,
                    "priority": a.priority.value, "status": a.status.value, "title": a.title,
                    "last_seen": a.last_seen, "emitted_at": a.emitted_at,
                    "source_topic": m.topic, "source_partition": m.partition, "source_offset": m.offset,
                    "event": a.model_dump_json(),
                }
                for a, m in batch.logged
            ])


def recent_alerts(engine: sa.Engine, limit: int = 50, since: datetime | None = None) -> list[Alert]:
    """The latest published alert events, newest first (for reports and the CLI)."""
    query = sa.select(alert_events.c.event).order_by(alert_events.c.id.desc()).limit(limit)
    if since is not None:
        query = query.where(alert_events.c.emitted_at >= since.astimezone(timezone.utc))
    with engine.connect() as conn:
        return [Alert.model_validate_json(row) for row in conn.execute(query).scalars()]
