"""The corrections repository (migration m0300) and the reads ``label`` and ``review`` need from the enriched feedback."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timezone

import sqlalchemy as sa

from consumers.store.db import make_engine, migrate
from consumers.store.feedback_store import enriched_feedback
from topics.schemas import Correction

_meta = sa.MetaData()

corrections = sa.Table(
    "corrections",
    _meta,
    sa.Column("correction_id", sa.String(64), primary_key=True),
    sa.Column("event_id", sa.String(128), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("primary_issue", sa.String(32), nullable=False),
    sa.Column("issue_types", sa.JSON, nullable=False),
    sa.Column("sentiment", sa.String(16), nullable=False),
    sa.Column("corrected_by", sa.String(200), nullable=False),
    sa.Column("corrected_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("note", sa.Text),
    sa.Column("predicted_primary_issue", sa.String(32)),
    sa.Column("predicted_issue_types", sa.JSON),
    sa.Column("predicted_sentiment", sa.String(16)),
    sa.Column("model_version", sa.String(100)),
    sa.Column("published_at", sa.DateTime(timezone=True)),
)

# What ``label`` and ``review`` read of a stored prediction.
PREDICTION_COLUMNS = ("event_id", "week", "received_at", "channel", "text", "primary_issue", "issue_types",
                      "issue_scores", "sentiment", "sentiment_score", "model_version")


def _utc(moment: datetime | None) -> datetime | None:
    # SQLite hands datetimes back naive; they were stored as UTC.
    return moment.replace(tzinfo=timezone.utc) if moment is not None and moment.tzinfo is None else moment


class CorrectionStore:
    def __init__(self, engine: sa.Engine, run_migrations: bool = True) -> None:
        self.engine = engine
        if run_migrations:
            migrate(engine)

    @classmethod
    def from_url(cls, url: str) -> CorrectionStore:
        return cls(make_engine(url))

    def close(self) -> None:
        self.engine.dispose()

    # --- corrections -------------------------------------------------------------------

    def record(self, items: Sequence[Correction]) -> None:
        """Insert the corrections, all or none (one transaction)."""
        if not items:
            return
        with self.engine.begin() as conn:
            conn.execute(corrections.insert(), [self._row(c) for c in items])

    @staticmethod
    def _row(c: Correction) -> dict:
        return {
            "correction_id": c.correction_id,
            "event_id": c.event_id,
            "text": c.text,
            "primary_issue": c.primary_issue.value,
            "issue_types": [t.value for t in c.issue_types],
            "sentiment": c.sentiment.value,
            "corrected_by": c.corrected_by,
            "corrected_at": c.corrected_at.astimezone(timezone.utc),
            "note": c.note,
            "predicted_primary_issue": c.predicted_primary_issue.value if c.predicted_primary_issue else None,
            "predicted_issue_types": [t.value for t in c.predicted_issue_types] if c.predicted_issue_types else None,
            "predicted_sentiment": c.predicted_sentiment.value if c.predicted_sentiment else None,
            "model_version": c.model_version,
        }

    @staticmethod
    def _event(row) -> Correction:
        return Correction(
            correction_id=row["correction_id"], event_id=row["event_id"], text=row["text"],
            primary_issue=row["primary_issue"], issue_types=list(row["issue_types"]), sentiment=row["sentiment"],
            corrected_by=row["corrected_by"], corrected_at=_utc(row["corrected_at"]), note=row["note"],
            predicted_primary_issue=row["predicted_primary_issue"],
            predicted_issue_types=list(row["predicted_issue_types"]) if row["predicted_issue_types"] else None,
            predicted_sentiment=row["predicted_sentiment"], model_version=row["model_version"],
        )

    def mark_published(self, correction_ids: Iterable[str]) -> None:
        ids = list(correction_ids)
        if not ids:
            return
        with self.engine.begin() as conn:
            conn.execute(corrections.update().where(corrections.c.correction_id.in_(ids))
                         .values(published_at=datetime.now(timezone.utc)))

    def unpublished(self) -> list[Correction]:
        """Recorded but not yet acknowledged by the broker (a publish that failed), oldest first."""
        query = sa.select(corrections).where(corrections.c.published_at.is_(None)).order_by(corrections.c.corrected_at)
        with self.engine.connect() as conn:
            return [self._event(r) for r in conn.execute(query).mappings()]

    def history(self, event_id: str | None = None) -> list[Correction]:
        """Every correction (of one event), oldest first."""
        query = sa.select(corrections).order_by(corrections.c.corrected_at, corrections.c.correction_id)
        if event_id is not None:
            query = query.where(corrections.c.event_id == event_id)
        with self.engine.connect() as conn:
            return [self._event(r) for r in conn.execute(query).mappings()]

    def latest(self) -> list[Correction]:
        """The latest correction of each event (what training reads), by event id."""
        latest: dict[str, Correction] = {}
        for c in self.history():
            latest[c.event_id] = c
        return [latest[k] for k in sorted(latest)]

    # --- stored predictions ------------------------------------------------------------

    def prediction(self, event_id: str) -> dict | None:
        t = enriched_feedback
        query = sa.select(*(t.c[name] for name in PREDICTION_COLUMNS)).where(t.c.event_id == event_id)
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else {**row, "received_at": _utc(row["received_at"])}

    def week_predictions(self, week: str) -> list[dict]:
        """Every stored prediction of an ISO week (``2026-W48``), in event-time order."""
        t = enriched_feedback
        query = (sa.select(*(t.c[name] for name in PREDICTION_COLUMNS))
                 .where(t.c.week == week).order_by(t.c.received_at, t.c.event_id))
        with self.engine.connect() as conn:
            return [{**r, "received_at": _utc(r["received_at"])} for r in conn.execute(query).mappings()]
