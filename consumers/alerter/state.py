"""Alerter state in the store (SQLite or PostgreSQL), shared safely by several instances.

Each batch runs inside one transaction that first takes the alerter lock row
(``UPDATE alerter_meta … WHERE name = 'lock'``: a row lock on PostgreSQL, the
write lock on SQLite) and bumps its version. Holding the lock, the instance
loads every state row written by others since the version it last saw, runs
the batch on its in-memory state, and writes back what changed, stamped with
the new version. Batches of all instances are thus serialised over one shared
state: counts stay global however the enriched topic's partitions are spread.

Effects are idempotent by **event id**, never by Kafka offset (offsets restart
from 0 on a new embedded broker while the store is kept, and the enricher may
re-produce an event at a new offset). The ids of processed events are stored
in the same transaction as the state they changed (``alerter_processed``), so
an event delivered again — the same batch after a crash, a re-produced copy, a
replay, a second run of the same file — is never counted again. Every alert
event is logged in ``alert_events`` with the event id that caused it and, once
the runtime acknowledged its publication, ``published_at``; an event delivered
again republishes only its alerts whose publication was never acknowledged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from consumers.alerter.engine import AlertEngine
from consumers.alerter.spikes import Bucket
from consumers.alerter.suppression import AlertState
from consumers.stage import InMessage
from consumers.store.db import upsert
from consumers.store.feedback_store import enriched_feedback
from topics.schemas import Alert, utcnow

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
alerter_series_parents = sa.Table(
    "alerter_series_parents", _meta,
    sa.Column("series", sa.String(400), primary_key=True),
    sa.Column("parent", sa.String(400), nullable=False),
    sa.Column("bucket", sa.BigInteger, nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
)
alerter_processed = sa.Table(
    "alerter_processed", _meta,
    sa.Column("event_id", sa.String(128), primary_key=True),
    sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
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
    sa.Column("source_event_id", sa.String(128)),
    sa.Column("published_at", sa.DateTime(timezone=True)),
)

LOCK = "lock"
# Processed event ids are kept while the event is within this much event time of the
# stream's watermark, or was processed within this much processing time — whichever is
# later; never shorter than the detector's horizon or twice the cool-down (see _retention).
PROCESSED_RETENTION = timedelta(days=8)
# Bound on bound parameters per IN (...) query.
_CHUNK = 500


@dataclass
class Batch:
    """What one transaction learns and records beside the engine state."""

    conn: sa.Connection
    version: int
    # Event ids of this batch that an earlier batch processed → the state version that did.
    known: dict[str, int]
    # Event ids processed in this batch → their event time.
    processed: dict[str, datetime] = field(default_factory=dict)
    # Stored events counted as history by a warm start (recorded as processed, not counted in stats).
    seeded: dict[str, datetime] = field(default_factory=dict)
    logged: list[tuple[Alert, InMessage | None, str | None]] = field(default_factory=list)
    _replayed: set[str] = field(default_factory=set)

    def already_processed(self, event_id: str) -> bool:
        return event_id in self.known or event_id in self.processed or event_id in self.seeded

    def done(self, event_id: str, event_time: datetime) -> None:
        self.processed[event_id] = event_time.astimezone(timezone.utc)

    def log(self, alert: Alert, message: InMessage | None, event_id: str | None) -> None:
        self.logged.append((alert, message, event_id))

    def unpublished_alerts(self, event_id: str) -> list[Alert]:
        """The alerts an event caused when it was first processed whose publication was never
        acknowledged, in order. Empty for an event met earlier in this batch: its alerts are
        already among this batch's outputs."""
        if event_id in self._replayed or event_id in self.processed:
            return []
        self._replayed.add(event_id)
        rows = self.conn.execute(
            sa.select(alert_events.c.event)
            .where(alert_events.c.source_event_id == event_id)
            .where(alert_events.c.published_at.is_(None))
            .order_by(alert_events.c.id)
        ).scalars()
        return [Alert.model_validate_json(row) for row in rows]


class AlertStateStore:
    """Loads and saves an ``AlertEngine``'s state; one per alerter instance."""

    def __init__(self, engine: sa.Engine, clock: Callable[[], datetime] = utcnow):
        self.engine = engine
        self.clock = clock
        self._synced: int | None = None  # the state version this instance's memory reflects
        # The state version of this instance's first batch: rows processed before it are an earlier run's.
        self.first_version: int | None = None
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
    def batch(self, alert_engine: AlertEngine, event_ids: Iterable[str], first_event_time: datetime | None = None,
              warm_start: tuple[int, int] | None = None) -> Iterator[Batch]:
        """One serialised batch: lock, catch up with other instances, run, save.

        ``warm_start`` (baseline minutes, gap minutes): when the state is fresh (no stream seen yet),
        first count the store's enriched history from one baseline before ``first_event_time`` up to
        ``gap`` minutes before it, and record those events as processed."""
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.update(alerter_meta).where(alerter_meta.c.name == LOCK).values(version=alerter_meta.c.version + 1))
                version = conn.execute(sa.select(alerter_meta.c.version).where(alerter_meta.c.name == LOCK)).scalar_one()
                if self._synced is None:
                    self._load(conn, alert_engine, since=None)
                elif self._synced != version - 1:
                    self._load(conn, alert_engine, since=self._synced)
                batch = Batch(conn, version, self._known(conn, set(event_ids)))
                if warm_start is not None and first_event_time is not None and alert_engine.detector.stream_start is None:
                    self._warm_start(conn, alert_engine, batch, first_event_time, *warm_start)
                yield batch
                self._save(conn, alert_engine, version, batch)
        except BaseException:
            # Memory may hold changes that were rolled back: reload everything next time.
            self._synced = None
            raise
        self._synced = version
        if self.first_version is None:
            self.first_version = version

    def mark_published(self, alerts: Iterable[Alert]) -> None:
        """Record that these alert events were acknowledged by the broker.

        Needs no lock: it only sets ``published_at`` on rows that are never otherwise updated."""
        keys = sorted({(a.alert_id, a.revision) for a in alerts})
        if not keys:
            return
        stmt = (
            sa.update(alert_events)
            .where(alert_events.c.alert_id == sa.bindparam("a_id"), alert_events.c.revision == sa.bindparam("a_rev"))
            .where(alert_events.c.published_at.is_(None))
            .values(published_at=sa.bindparam("at"))
            .execution_options(synchronize_session=False)
        )
        at = self.clock().astimezone(timezone.utc)
        with self.engine.begin() as conn:
            conn.execute(stmt, [{"a_id": a, "a_rev": r, "at": at} for a, r in keys])

    # --- operators -----------------------------------------------------------------

    def operator_action(self, alert_engine: AlertEngine, alert_id: str, action: str, who: str, note: str | None = None) -> Alert:
        """``ack`` or ``resolve`` an alert by id, under the alerter lock: the state row is written with a
        new version (running instances load it before their next batch) and the alert event is logged
        unpublished; the caller publishes it and calls ``mark_published``."""
        self._synced = None  # the engine may be new: load everything
        with self.batch(alert_engine, []) as batch:
            book = alert_engine.book
            state = book.find_by_id(alert_id)
            if state is None:
                raise ValueError(f"no alert {alert_id!r} in the store (closed alerts are kept for a cool-down after resolving)")
            if not state.open:
                raise ValueError(f"alert {alert_id} is already resolved")
            if action == "ack":
                alert = book.acknowledge(state, who, note)
            elif action == "resolve":
                alert = book.operator_resolve(state, who, note)
            else:
                raise ValueError(f"unknown action {action!r}")
            batch.log(alert, None, None)
        return alert

    # --- loading -------------------------------------------------------------------

    def _warm_start(self, conn: sa.Connection, alert_engine: AlertEngine, batch: Batch, first: datetime,
                    baseline_min: int, gap_min: int) -> None:
        if not sa.inspect(conn).has_table(enriched_feedback.name):
            return
        first = first.astimezone(timezone.utc)
        start, end = first - timedelta(minutes=baseline_min), first - timedelta(minutes=gap_min)
        t = enriched_feedback  # the enricher's table, read-only: the columns a warm start counts
        rows = conn.execute(
            sa.select(t.c.event_id, t.c.channel, t.c.customer_tier, t.c.received_at, t.c.primary_issue,
                      t.c.sentiment_score, t.c.theme_id)
            .where(t.c.received_at >= start, t.c.received_at < end)
            .order_by(t.c.received_at)
        ).all()
        if not rows:
            return
        detector = alert_engine.detector
        vip_tiers = alert_engine.matcher.rules.vip_tiers
        for row in rows:
            at = row.received_at if row.received_at.tzinfo else row.received_at.replace(tzinfo=timezone.utc)
            tier = (row.customer_tier or "").strip().lower()
            detector.count(at, row.theme_id, row.primary_issue, row.channel, float(row.sentiment_score or 0.0),
                           vip=bool(tier) and tier in vip_tiers)
            batch.seeded[row.event_id] = at.astimezone(timezone.utc)
        for event_id in self._known(conn, set(batch.seeded)):
            batch.seeded.pop(event_id, None)
        # The stream starts where the stored history does: silence before it means nothing.
        log.info("alerter warm start: %d stored events from %s to %s counted as history", len(rows), rows[0].received_at, rows[-1].received_at)

    def _known(self, conn: sa.Connection, event_ids: set[str]) -> dict[str, int]:
        ids = sorted(event_ids)
        known: dict[str, int] = {}
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i : i + _CHUNK]
            known.update(conn.execute(
                sa.select(alerter_processed.c.event_id, alerter_processed.c.version)
                .where(alerter_processed.c.event_id.in_(chunk))
            ).all())
        return known

    def _load(self, conn: sa.Connection, alert_engine: AlertEngine, since: int | None) -> None:
        detector, book = alert_engine.detector, alert_engine.book
        if since is None:
            detector.counts.buckets.clear()
            detector.parents.clear()
            detector.parent_buckets.clear()
            book.states.clear()
            detector.stream_start, detector.watermark = None, None
        detector.counts.dirty.clear()
        detector.parents_dirty.clear()
        book.dirty.clear()
        meta = {row.name: row.value for row in conn.execute(sa.select(alerter_meta))}
        if meta.get("stream_start") is not None:
            detector.stream_start = int(meta["stream_start"])
        if meta.get("watermark") is not None:
            detector.watermark = datetime.fromisoformat(meta["watermark"])
        if meta.get("dispersion_memory") is not None:
            memory = json.loads(meta["dispersion_memory"])
            detector.memory_hour = memory.pop("hour", None)
            detector.memory = {dim: tuple(sums) for dim, sums in memory.items()}
        elif since is None:
            detector.memory, detector.memory_hour = {}, None
        query = sa.select(alerter_buckets)
        if since is not None:
            query = query.where(alerter_buckets.c.version > since)
        loaded = 0
        for row in conn.execute(query):
            detector.counts.put(row.series, row.bucket, Bucket(row.count, row.score_sum, row.score_sq))
            loaded += 1
        query = sa.select(alerter_series_parents)
        if since is not None:
            query = query.where(alerter_series_parents.c.version > since)
        for row in conn.execute(query):
            if row.bucket >= detector.parent_buckets.get(row.series, row.bucket):
                detector.parents[row.series] = row.parent
                detector.parent_buckets[row.series] = row.bucket
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
        if detector.memory_hour is not None:
            meta_rows.append({"name": "dispersion_memory", "version": version,
                              "value": json.dumps({"hour": detector.memory_hour, **detector.memory})})
        upsert(conn, alerter_meta, meta_rows, ["name"])
        bucket_rows = []
        for series, bucket in sorted(detector.counts.dirty):
            value = detector.counts.buckets.get(series, {}).get(bucket)
            if value is not None:
                bucket_rows.append({"series": series, "bucket": bucket, "count": value.count,
                                    "score_sum": value.score_sum, "score_sq": value.score_sq, "version": version})
        upsert(conn, alerter_buckets, bucket_rows, ["series", "bucket"])
        detector.counts.dirty.clear()
        parent_rows = [{"series": theme, "parent": detector.parents[theme], "bucket": detector.parent_buckets[theme], "version": version}
                       for theme in sorted(detector.parents_dirty) if theme in detector.parents]
        upsert(conn, alerter_series_parents, parent_rows, ["series"])
        detector.parents_dirty.clear()
        if detector.watermark is not None:
            oldest = detector.bucket_of(detector.watermark) - detector.config.horizon_buckets
            conn.execute(sa.delete(alerter_buckets).where(alerter_buckets.c.bucket < oldest))
            conn.execute(sa.delete(alerter_series_parents).where(alerter_series_parents.c.bucket < oldest))
        state_rows = []
        for kind, key in sorted(book.dirty):
            state = book.states.get((kind, key))
            state_rows.append({
                "kind": kind, "key": key, "alert_id": state.alert_id if state else "",
                "is_open": bool(state and state.open), "state": json.dumps(state.to_json(), ensure_ascii=False) if state else "{}",
                "deleted": state is None, "version": version,
            })
        upsert(conn, alerter_alert_state, state_rows, ["kind", "key"])
        book.dirty.clear()
        if batch.processed or batch.seeded:
            at = self.clock().astimezone(timezone.utc)
            conn.execute(alerter_processed.insert(), [
                {"event_id": event_id, "event_time": event_time, "processed_at": at, "version": version}
                for event_id, event_time in {**batch.seeded, **batch.processed}.items()
            ])
        if detector.watermark is not None:
            retention = _retention(alert_engine)
            conn.execute(sa.delete(alerter_processed).where(
                alerter_processed.c.event_time < detector.watermark - retention,
                alerter_processed.c.processed_at < self.clock().astimezone(timezone.utc) - retention,
            ))
        if batch.logged:
            conn.execute(alert_events.insert(), [
                {
                    "alert_id": a.alert_id, "revision": a.revision, "kind": a.kind.value, "key": a.key,
                    "priority": a.priority.value, "status": a.status.value, "title": a.title,
                    "last_seen": a.last_seen, "emitted_at": a.emitted_at,
                    "source_topic": m.topic if m else None, "source_partition": m.partition if m else None,
                    "source_offset": m.offset if m else None,
                    "source_event_id": event_id, "published_at": None,
                    "event": a.model_dump_json(),
                }
                for a, m, event_id in batch.logged
            ])


def _retention(alert_engine: AlertEngine) -> timedelta:
    """How long processed event ids are kept: at least as long as anything in the state can
    remember an event (its buckets for the detector's horizon, its alert for a cool-down)."""
    detector = alert_engine.detector
    horizon = timedelta(seconds=detector.config.horizon_buckets * detector.config.bucket_s)
    return max(PROCESSED_RETENTION, horizon, 2 * alert_engine.book.policy.cooldown)


def alert_states(engine: sa.Engine, open_only: bool = True) -> list[AlertState]:
    """The alerts the alerter keeps (open ones, or also those resolved within a cool-down), newest first."""
    query = sa.select(alerter_alert_state.c.state).where(alerter_alert_state.c.deleted.is_(False))
    if open_only:
        query = query.where(alerter_alert_state.c.is_open.is_(True))
    with engine.connect() as conn:
        states = [AlertState.from_json(json.loads(row)) for row in conn.execute(query).scalars()]
    return sorted(states, key=lambda s: (s.priority.rank, -s.last_seen.timestamp()))


def recent_alerts(engine: sa.Engine, limit: int = 50, since: datetime | None = None) -> list[Alert]:
    """The latest published alert events, newest first (for reports and the CLI)."""
    query = sa.select(alert_events.c.event).order_by(alert_events.c.id.desc()).limit(limit)
    if since is not None:
        query = query.where(alert_events.c.emitted_at >= since.astimezone(timezone.utc))
    with engine.connect() as conn:
        return [Alert.model_validate_json(row) for row in conn.execute(query).scalars()]
