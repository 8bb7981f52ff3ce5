"""The normalizer's dedup index in the store (SQLite or PostgreSQL): survives restarts.

Fingerprints and LSH band keys live in ``dedup_fingerprints`` and
``dedup_bands`` (migration 100). One batch is resolved in one transaction,
in order, so events of the same batch see each other.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy import Engine

from consumers.normalizer.dedup import Fingerprint, find_match, window_of
from topics.settings import DedupSettings

_meta = sa.MetaData()
fingerprints = sa.Table(
    "dedup_fingerprints",
    _meta,
    sa.Column("event_id", sa.String(128), primary_key=True),
    sa.Column("customer_id", sa.String(200), nullable=False),
    sa.Column("exact_key", sa.String(64), nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("signature", sa.LargeBinary),
    sa.Column("duplicate_of", sa.String(128)),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
)
bands = sa.Table(
    "dedup_bands",
    _meta,
    sa.Column("band_key", sa.BigInteger, primary_key=True),
    sa.Column("event_id", sa.String(128), primary_key=True),
)

# Old fingerprints are pruned at most this often (they can never match again once outside the window).
_PRUNE_INTERVAL_S = 600.0


def _utc(moment: datetime) -> datetime:
    """Stored as UTC; SQLite hands back naive values, which are UTC by this rule."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _db_time(moment: datetime, dialect: str) -> datetime:
    moment = _utc(moment)
    return moment.replace(tzinfo=None) if dialect == "sqlite" else moment


class SqlDedupIndex:
    def __init__(self, engine: Engine, settings: DedupSettings):
        self.engine = engine
        self.settings = settings
        self._dialect = engine.dialect.name
        self._last_prune = time.monotonic()

    def resolve(self, items: Sequence[Fingerprint]) -> list[str | None]:
        answers: list[str | None] = []
        with self.engine.begin() as conn:
            for fp in items:
                answers.append(self._resolve_one(conn, fp))
        if items and time.monotonic() - self._last_prune > _PRUNE_INTERVAL_S:
            newest = max(_utc(fp.received_at) for fp in items)
            self.prune(newest - 2 * window_of(self.settings))
        return answers

    def _row_to_candidate(self, row) -> tuple[Fingerprint, str | None]:
        fp = Fingerprint(row.event_id, row.customer_id, _utc(row.received_at), row.exact_key, row.signature, ())
        return fp, row.duplicate_of

    def _resolve_one(self, conn: sa.Connection, fp: Fingerprint) -> str | None:
        known = conn.execute(sa.select(fingerprints.c.duplicate_of).where(fingerprints.c.event_id == fp.event_id)).first()
        if known is not None:
            return known.duplicate_of
        window = window_of(self.settings)
        low = _db_time(fp.received_at - window, self._dialect)
        high = _db_time(fp.received_at + window, self._dialect)
        in_window = fingerprints.c.received_at.between(low, high)
        candidates: dict[str, tuple[Fingerprint, str | None]] = {}
        for row in conn.execute(sa.select(fingerprints).where(fingerprints.c.exact_key == fp.exact_key, in_window)):
            candidates[row.event_id] = self._row_to_candidate(row)
        if fp.band_keys and not candidates:
            near = (
                sa.select(fingerprints)
                .where(
                    fingerprints.c.event_id.in_(sa.select(bands.c.event_id).where(bands.c.band_key.in_(fp.band_keys))),
                    in_window,
                )
            )
            for row in conn.execute(near):
                candidate, dup = self._row_to_candidate(row)
                # Every candidate shares a band by construction of the query.
                candidates[row.event_id] = (replace(candidate, band_keys=fp.band_keys), dup)
        match = find_match(fp, list(candidates.values()), self.settings.near_threshold)
        now = datetime.now(timezone.utc)
        conn.execute(
            fingerprints.insert().values(
                event_id=fp.event_id,
                customer_id=fp.customer_id,
                exact_key=fp.exact_key,
                received_at=_db_time(fp.received_at, self._dialect),
                signature=fp.signature,
                duplicate_of=match,
                recorded_at=_db_time(now, self._dialect),
            )
        )
        if fp.band_keys:
            conn.execute(bands.insert(), [{"band_key": key, "event_id": fp.event_id} for key in dict.fromkeys(fp.band_keys)])
        return match

    def prune(self, before: datetime) -> int:
        """Forget fingerprints received before ``before``; returns how many."""
        self._last_prune = time.monotonic()
        cutoff = _db_time(before, self._dialect)
        old = sa.select(fingerprints.c.event_id).where(fingerprints.c.received_at < cutoff)
        with self.engine.begin() as conn:
            conn.execute(bands.delete().where(bands.c.event_id.in_(old)))
            return conn.execute(fingerprints.delete().where(fingerprints.c.received_at < cutoff)).rowcount or 0

    def count(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(fingerprints)).scalar_one()
