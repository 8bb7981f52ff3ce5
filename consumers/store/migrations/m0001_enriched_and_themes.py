"""Enriched feedback, live themes, weekly theme snapshots and weekly membership.

The tables are spelled out here (not imported from the repository) so this
migration keeps creating exactly this shape when the live definitions move on.
"""

from __future__ import annotations

import sqlalchemy as sa

VERSION = 1
DESCRIPTION = "enriched feedback, themes, weekly theme snapshots and membership"


def upgrade(conn: sa.Connection) -> None:
    meta = sa.MetaData()
    sa.Table(
        "enriched_feedback",
        meta,
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
        sa.Column("model_version", sa.String(100), nullable=False),
        sa.Column("flags", sa.JSON, nullable=False),
        sa.Column("signals", sa.JSON, nullable=False),
        sa.Column("duplicate_of", sa.String(128)),
        sa.Column("enriched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
        sa.Index("ix_enriched_feedback_week", "week"),
        sa.Index("ix_enriched_feedback_theme", "theme_id"),
    )
    sa.Table(
        "themes",
        meta,
        sa.Column("theme_id", sa.String(64), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("centroid", sa.LargeBinary, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("label", sa.String(300)),
        sa.Column("keywords", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    sa.Table(
        "theme_weeks",
        meta,
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
    sa.Table(
        "theme_members",
        meta,
        sa.Column("week", sa.String(8), primary_key=True),
        sa.Column("event_id", sa.String(128), primary_key=True),
        sa.Column("theme_id", sa.String(64), nullable=False),
        sa.Index("ix_theme_members_theme", "week", "theme_id"),
    )
    meta.create_all(conn)
