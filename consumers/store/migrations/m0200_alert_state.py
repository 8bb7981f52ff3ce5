"""Alerter state: event-time buckets, alert states, processed offsets, and the published alert log.

Every state row carries ``version``, the value of the ``state_version`` counter
in ``alerter_meta`` when it was written; an alerter instance reloads only rows
newer than the version it last saw (docs/alerts.md, several instances).
"""

from __future__ import annotations

import sqlalchemy as sa

VERSION = 200
DESCRIPTION = "alerter state: buckets, alert states, offsets, alert log"


def upgrade(conn: sa.Connection) -> None:
    meta = sa.MetaData()
    sa.Table(
        "alerter_meta",
        meta,
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("value", sa.Text),
        sa.Column("version", sa.BigInteger, nullable=False),
    )
    sa.Table(
        "alerter_buckets",
        meta,
        sa.Column("series", sa.String(400), primary_key=True),
        sa.Column("bucket", sa.BigInteger, primary_key=True),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("score_sum", sa.Float, nullable=False),
        sa.Column("score_sq", sa.Float, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Index("ix_alerter_buckets_version", "version"),
    )
    sa.Table(
        "alerter_alert_state",
        meta,
        sa.Column("kind", sa.String(30), primary_key=True),
        sa.Column("key", sa.String(400), primary_key=True),
        sa.Column("alert_id", sa.String(64), nullable=False),
        sa.Column("is_open", sa.Boolean, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Index("ix_alerter_alert_state_version", "version"),
    )
    sa.Table(
        "alerter_offsets",
        meta,
        sa.Column("topic", sa.String(300), primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True),
        sa.Column("next_offset", sa.BigInteger, nullable=False),
    )
    sa.Table(
        "alert_events",
        meta,
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
        sa.UniqueConstraint("alert_id", "revision", name="uq_alert_events_revision"),
        sa.Index("ix_alert_events_source", "source_topic", "source_partition", "source_offset"),
        sa.Index("ix_alert_events_emitted", "emitted_at"),
    )
    meta.create_all(conn)
