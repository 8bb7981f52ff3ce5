"""Human corrections of predictions (``feedback-miner label``; versions 300–399 are the corrections area).

One row per correction, never updated except for ``published_at`` (set once the broker
acknowledged it on ``feedback.corrections``): a later correction of the same event supersedes
an earlier one when training reads them, and the history of who said what stays.
"""

from __future__ import annotations

import sqlalchemy as sa

VERSION = 300
DESCRIPTION = "corrections: the labels people gave, who and when, and what the model had said"


def upgrade(conn: sa.Connection) -> None:
    meta = sa.MetaData()
    sa.Table(
        "corrections",
        meta,
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
        sa.Index("ix_corrections_event", "event_id", "corrected_at"),
    )
    meta.create_all(conn)
