"""The enriched-feedback and theme repository (SQLite or PostgreSQL).

Writes are idempotent: enriched feedback is upserted by event id with the
dialect's INSERT … ON CONFLICT, so a redelivered event never makes a second
row; a week's theme snapshot is replaced as a whole when a digest is rebuilt.
Embeddings (the classifier's and the theme embedding, migration m0002) are stored as
float16 bytes (768 bytes for 384 dimensions);
theme centroids as float32, because they are updated incrementally.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone

import numpy as np
import sqlalchemy as sa

from consumers.store.db import make_engine, migrate, upsert
from consumers.themes.types import Theme, WeeklyTheme, WeekFeedback
from consumers.themes.weeks import iso_week
from topics.schemas import EnrichedFeedback

_meta = sa.MetaData()

enriched_feedback = sa.Table(
    "enriched_feedback",
    _meta,
    sa.Column("event_id", sa.String(128), primary_key=True),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("source", sa.String(100), nullable=False),
    sa.Column("customer_id", sa.String(200), nullable=False),
    sa.Column("customer_tier", sa.String(50)),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("week", sa.String(8), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("subject", sa.Text),
    sa.Column("primary_issue", sa.String(32), nullable=False),
    sa.Column("issue_types", sa.JSON, nullable=False),
    sa.Column("issue_scores", sa.JSON, nullable=False),
    sa.Column("sentiment", sa.String(16), nullable=False),
    sa.Column("sentiment_score", sa.Float, nullable=False),
    sa.Column("theme_id", sa.String(64)),
    sa.Column("embedding", sa.LargeBinary, nullable=False),
    sa.Column("theme_embedding", sa.LargeBinary),  # m0002; NULL for rows stored before it
    sa.Column("aspect_sentiments", sa.JSON),  # m0003: {issue type: sentiment}; NULL for rows stored before it
    sa.Column("model_version", sa.String(100), nullable=False),
    sa.Column("flags", sa.JSON, nullable=False),
    sa.Column("signals", sa.JSON, nullable=False),
    sa.Column("duplicate_of", sa.String(128)),
    sa.Column("enriched_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
)

themes = sa.Table(
    "themes",
    _meta,
    sa.Column("theme_id", sa.String(64), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("centroid", sa.LargeBinary, nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("label", sa.String(300)),
    sa.Column("keywords", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

theme_weeks = sa.Table(
    "theme_weeks",
    _meta,
    sa.Column("week", sa.String(8), primary_key=True),
    sa.Column("theme_id", sa.String(64), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("previous_size", sa.Integer, nullable=False),
    sa.Column("emerging", sa.Boolean, nullable=False),
    sa.Column("fading", sa.Boolean, nullable=False),
    sa.Column("centroid", sa.LargeBinary, nullable=False),
    sa.Column("keywords", sa.JSON, nullable=False),
    sa.Column("quotes", sa.JSON, nullable=False),
    sa.Column("sentiment_mix", sa.JSON, nullable=False),
    sa.Column("issue_mix", sa.JSON, nullable=False),
    sa.Column("channel_mix", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

theme_members = sa.Table(
    "theme_members",
    _meta,
    sa.Column("week", sa.String(8), primary_key=True),
    sa.Column("event_id", sa.String(128), primary_key=True),
    sa.Column("theme_id", sa.String(64), nullable=False),
)


def to_float16_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f2").tobytes()


def from_float16_bytes(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f2").astype(np.float32)


def _f32(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def _from_f32(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4").copy()


def _utc(moment: datetime | None) -> datetime | None:
    # SQLite hands datetimes back naive; they were stored as UTC.
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment


class FeedbackStore:
    """Repository over one engine; the schema is migrated on construction."""

    def __init__(self, engine: sa.Engine, run_migrations: bool = True):
        self.engine = engine
        if run_migrations:
            migrate(engine)

    @classmethod
    def from_url(cls, url: str) -> FeedbackStore:
        return cls(make_engine(url))

    def close(self) -> None:
        self.engine.dispose()

    # --- enriched feedback ---------------------------------------------------

    def upsert_enriched(self, items: Iterable[tuple]) -> int:
        """Insert or replace each record by event id; returns how many were written.

        Items: (record, embedding) or (record, embedding, theme embedding)."""
        return self.write_batch(list(items), [])

    def write_batch(self, items: Sequence[tuple], changed_themes: Iterable[Theme]) -> int:
        """Feedback and the themes it changed, in one transaction (a crash never leaves one without the other).

        Items: (record, classifier embedding[, theme embedding])."""
        now = datetime.now(timezone.utc)
        rows = {item[0].event_id: self._feedback_row(item[0], item[1], now, item[2] if len(item) > 2 else None) for item in items}  # last one wins
        with self.engine.begin() as conn:
            upsert(conn, themes, [self._theme_row(th, now) for th in changed_themes], ["theme_id"])
            upsert(conn, enriched_feedback, list(rows.values()), ["event_id"])
        return len(rows)

    @staticmethod
    def _feedback_row(event: EnrichedFeedback, embedding: np.ndarray, now: datetime, theme_embedding: np.ndarray | None = None) -> dict:
        return {
            "event_id": event.event_id,
            "channel": event.channel.value,
            "source": event.source,
            "customer_id": event.customer.id,
            "customer_tier": event.customer.tier,
            "received_at": event.received_at.astimezone(timezone.utc),
            "week": iso_week(event.received_at),
            "text": event.text,
            "subject": event.subject,
            "primary_issue": event.primary_issue.value,
            "issue_types": [t.value for t in event.issue_types],
            "issue_scores": {sc.label.value: sc.probability for sc in event.issue_scores},
            "sentiment": event.sentiment.label.value,
            "sentiment_score": event.sentiment.score,
            "aspect_sentiments": {a.issue_type.value: a.sentiment.value for a in event.aspect_sentiments},
            "theme_id": event.theme_id,
            "embedding": to_float16_bytes(embedding),
            "theme_embedding": None if theme_embedding is None else to_float16_bytes(theme_embedding),
            "model_version": event.model_version,
            "flags": list(event.flags),
            "signals": event.signals,
            "duplicate_of": event.duplicate_of,
            "enriched_at": event.enriched_at.astimezone(timezone.utc),
            "stored_at": now,
        }

    def stored_theme_ids(self, event_ids: Sequence[str]) -> dict[str, str | None]:
        """Theme of each event already stored (absent: never stored)."""
        if not event_ids:
            return {}
        t = enriched_feedback
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t.c.event_id, t.c.theme_id).where(t.c.event_id.in_(list(event_ids))))
            return {event_id: theme_id for event_id, theme_id in rows}

    def weeks_of(self, event_ids: Sequence[str]) -> list[str]:
        """The weeks the given (stored) events fall in, oldest first."""
        t = enriched_feedback
        weeks: set[str] = set()
        ids = list(event_ids)
        with self.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                weeks.update(conn.execute(sa.select(t.c.week).where(t.c.event_id.in_(ids[start : start + 500])).distinct()).scalars())
        return sorted(weeks)

    def count_enriched(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(enriched_feedback)).scalar_one()

    def get_enriched(self, event_id: str) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(enriched_feedback).where(enriched_feedback.c.event_id == event_id)).mappings().first()
        if row is None:
            return None
        out = dict(row)
        out["embedding"] = from_float16_bytes(row["embedding"])
        out["theme_embedding"] = None if row["theme_embedding"] is None else from_float16_bytes(row["theme_embedding"])
        out["received_at"] = _utc(row["received_at"])
        return out

    def week_feedback(self, week: str) -> WeekFeedback:
        """One week's feedback; ``embeddings`` are the theme embeddings (the classifier's for rows stored before m0002)."""
        t = enriched_feedback
        query = sa.select(
            t.c.event_id, sa.func.coalesce(t.c.theme_embedding, t.c.embedding).label("embedding"), t.c.text, t.c.channel, t.c.primary_issue, t.c.sentiment, t.c.sentiment_score, t.c.theme_id,
            t.c.aspect_sentiments,
        ).where(t.c.week == week).order_by(t.c.received_at, t.c.event_id)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        dim = len(rows[0].embedding) // 2 if rows else 0
        embeddings = np.frombuffer(b"".join(r.embedding for r in rows), dtype="<f2").reshape(len(rows), dim).astype(np.float32)
        return WeekFeedback(
            event_ids=[r.event_id for r in rows],
            embeddings=embeddings,
            texts=[r.text for r in rows],
            channels=[r.channel for r in rows],
            primary_issues=[r.primary_issue for r in rows],
            sentiments=[r.sentiment for r in rows],
            sentiment_scores=[float(r.sentiment_score) for r in rows],
            live_theme_ids=[r.theme_id for r in rows],
            aspect_sentiments=[r.aspect_sentiments or {} for r in rows],
        )

    def week_counts(self, weeks: Sequence[str]) -> dict[str, dict[str, Counter]]:
        """Per week: counts by sentiment, by primary issue and by channel (the digest's trends)."""
        t = enriched_feedback
        out: dict[str, dict[str, Counter]] = {w: {"sentiment": Counter(), "issue": Counter(), "channel": Counter()} for w in weeks}
        with self.engine.connect() as conn:
            for key, column in (("sentiment", t.c.sentiment), ("issue", t.c.primary_issue), ("channel", t.c.channel)):
                query = sa.select(t.c.week, column, sa.func.count()).where(t.c.week.in_(list(weeks))).group_by(t.c.week, column)
                for week, value, count in conn.execute(query):
                    out[week][key][value] = count
        return out

    # --- live themes ---------------------------------------------------------

    def load_themes(self) -> list[Theme]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(themes).order_by(themes.c.created_at, themes.c.theme_id)).mappings().all()
        return [
            Theme(
                theme_id=r["theme_id"],
                centroid=_from_f32(r["centroid"]),
                size=r["size"],
                status=r["status"],
                label=r["label"],
                keywords=list(r["keywords"]),
                created_at=_utc(r["created_at"]),
                updated_at=_utc(r["updated_at"]),
            )
            for r in rows
        ]

    def drop_stale_candidates(self, updated_before: datetime) -> int:
        """Delete candidate themes not updated since ``updated_before``; returns how many."""
        with self.engine.begin() as conn:
            result = conn.execute(themes.delete().where(themes.c.status == "candidate", themes.c.updated_at < updated_before))
            return result.rowcount

    def save_themes(self, items: Iterable[Theme]) -> None:
        now = datetime.now(timezone.utc)
        with self.engine.begin() as conn:
            upsert(conn, themes, [self._theme_row(th, now) for th in items], ["theme_id"])

    @staticmethod
    def _theme_row(th: Theme, now: datetime) -> dict:
        return {
            "theme_id": th.theme_id,
            "status": th.status,
            "centroid": _f32(th.centroid),
            "size": int(th.size),
            "label": th.label,
            "keywords": list(th.keywords),
            "created_at": th.created_at or now,
            "updated_at": th.updated_at or now,
        }

    # --- weekly snapshots ----------------------------------------------------

    def save_week(self, week: str, weekly: Sequence[WeeklyTheme], members: dict[str, str]) -> None:
        """Replace ``week``'s snapshot and membership (rebuilding a digest is idempotent)."""
        now = datetime.now(timezone.utc)
        with self.engine.begin() as conn:
            conn.execute(theme_weeks.delete().where(theme_weeks.c.week == week))
            conn.execute(theme_members.delete().where(theme_members.c.week == week))
            if weekly:
                conn.execute(
                    theme_weeks.insert(),
                    [
                        {
                            "week": week,
                            "theme_id": w.theme_id,
                            "status": w.status,
                            "size": w.size,
                            "previous_size": w.previous_size,
                            "emerging": w.emerging,
                            "fading": w.fading,
                            "centroid": _f32(w.centroid),
                            "keywords": w.keywords,
                            "quotes": w.quotes,
                            "sentiment_mix": w.sentiment_mix,
                            "issue_mix": w.issue_mix,
                            "channel_mix": w.channel_mix,
                            "created_at": now,
                        }
                        for w in weekly
                    ],
                )
            if members:
                conn.execute(theme_members.insert(), [{"week": week, "event_id": e, "theme_id": t} for e, t in members.items()])

    def load_week(self, week: str) -> list[WeeklyTheme]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(theme_weeks).where(theme_weeks.c.week == week).order_by(theme_weeks.c.size.desc(), theme_weeks.c.theme_id)
            ).mappings().all()
        return [
            WeeklyTheme(
                theme_id=r["theme_id"],
                week=r["week"],
                size=r["size"],
                previous_size=r["previous_size"],
                centroid=_from_f32(r["centroid"]),
                keywords=list(r["keywords"]),
                quotes=list(r["quotes"]),
                sentiment_mix=dict(r["sentiment_mix"]),
                issue_mix=dict(r["issue_mix"]),
                channel_mix=dict(r["channel_mix"]),
                emerging=bool(r["emerging"]),
                fading=bool(r["fading"]),
                status=r["status"],
            )
            for r in rows
        ]

    def week_members(self, week: str) -> dict[str, str]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(theme_members.c.event_id, theme_members.c.theme_id).where(theme_members.c.week == week))
            return dict(rows.all())
