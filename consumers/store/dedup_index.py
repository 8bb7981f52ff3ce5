"""The normalizer's dedup index in the store (SQLite or PostgreSQL): survives restarts.

Fingerprints and LSH band keys live in ``dedup_fingerprints`` and
``dedup_bands`` (migration 100). One batch is resolved in one transaction,
in order, so events of the same batch see each other.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy import Engine

from consumers.normalizer.dedup import DedupUnavailable, Fingerprint, find_match, window_of
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
        if not items:
            return []
        try:
            with self.engine.begin() as conn:
                answers = self._resolve_batch(conn, items)
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            # Connection-level failures only; a programming error must still surface.
            raise DedupUnavailable(f"dedup store unavailable: {type(exc).__name__}: {exc}".splitlines()[0]) from exc
        if time.monotonic() - self._last_prune > _PRUNE_INTERVAL_S:
            newest = max(_utc(fp.received_at) for fp in items)
            self.prune(newest - 2 * window_of(self.settings))
        return answers

    def _resolve_batch(self, conn: sa.Connection, items: Sequence[Fingerprint]) -> list[str | None]:
        """A handful of queries per batch: known ids, exact candidates, band candidates, then bulk inserts."""
        window = window_of(self.settings)
        low = _db_time(min(fp.received_at for fp in items) - window, self._dialect)
        high = _db_time(max(fp.received_at for fp in items) + window, self._dialect)
        in_window = fingerprints.c.received_at.between(low, high)
        ids = list({fp.event_id for fp in items})
        known = dict(conn.execute(sa.select(fingerprints.c.event_id, fingerprints.c.duplicate_of).where(fingerprints.c.event_id.in_(ids))).all())

        stored: dict[str, tuple[Fingerprint, str | None]] = {}
        exact_keys = list({fp.exact_key for fp in items})
        for row in conn.execute(sa.select(fingerprints).where(fingerprints.c.exact_key.in_(exact_keys), in_window)):
            stored[row.event_id] = (self._candidate(row, ()), row.duplicate_of)
        wanted_bands = list({key for fp in items for key in fp.band_keys})
        if wanted_bands:
            matched: dict[str, set[int]] = {}
            query = (
                sa.select(fingerprints, bands.c.band_key)
                .join(bands, bands.c.event_id == fingerprints.c.event_id)
                .where(bands.c.band_key.in_(wanted_bands), in_window)
            )
            for row in conn.execute(query):
                matched.setdefault(row.event_id, set()).add(row.band_key)
                # Only the band keys shared with this batch are loaded: enough to test intersection.
                stored[row.event_id] = (self._candidate(row, tuple(matched[row.event_id])), row.duplicate_of)

        answers: list[str | None] = []
        new_rows, new_bands = [], []
        fresh: dict[str, tuple[Fingerprint, str | None]] = {}
        now = _db_time(datetime.now(timezone.utc), self._dialect)
        for fp in items:
            if fp.event_id in known:
                answers.append(known[fp.event_id])
                continue
            if fp.event_id in fresh:  # the same event twice in one batch
                answers.append(fresh[fp.event_id][1])
                continue
            candidates = [
                (candidate, dup)
                for candidate, dup in (*stored.values(), *fresh.values())
                if abs(candidate.received_at - _utc(fp.received_at)) <= window
            ]
            match = find_match(fp, candidates, self.settings.near_threshold)
            answers.append(match)
            fresh[fp.event_id] = (replace(fp, received_at=_utc(fp.received_at)), match)
            new_rows.append({
                "event_id": fp.event_id,
                "customer_id": fp.customer_id,
                "exact_key": fp.exact_key,
                "received_at": _db_time(fp.received_at, self._dialect),
                "signature": fp.signature,
                "duplicate_of": match,
                "recorded_at": now,
            })
            new_bands.extend({"band_key": key, "event_id": fp.event_id} for key in dict.fromkeys(fp.band_keys))
        if new_rows:
            conn.execute(fingerprints.insert(), new_rows)
        if new_bands:
            conn.execute(bands.insert(), new_bands)
        return answers

    @staticmethod
    def _candidate(row, band_keys: tuple[int, ...]) -> Fingerprint:
        return Fingerprint(row.event_id, row.customer_id, _utc(row.received_at), row.exact_key, row.signature, band_keys)

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
