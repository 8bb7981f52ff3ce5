"""Alerter idempotence by event id, not by Kafka offset.

- ``alerter_processed``: one row per enriched event the alerter counted, keyed
  by ``event_id``, written in the same transaction as the state it changed.
  ``event_time`` is indexed for pruning (docs/alerts.md, redelivery);
  ``version`` is the state version of the batch that processed it.
- ``alert_events`` records the ``source_event_id`` that caused each alert event
  and ``published_at``, set once the runtime acknowledged its publication.
  Rows written before this migration cannot be found by event id and are taken
  as published (stamped with their ``emitted_at``), so they are never sent again.
- ``alerter_offsets`` is dropped: offsets restart from 0 on a new embedded
  broker while the store is kept, so they cannot tell what was processed.
"""

from __future__ import annotations

import sqlalchemy as sa

VERSION = 202
DESCRIPTION = "alerter idempotence by event id: processed events, alert source event ids and publication marks"


def _add_column(conn: sa.Connection, table: str, name: str, type_: sa.types.TypeEngine) -> None:
    conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {name} {type_.compile(dialect=conn.dialect)}"))


def upgrade(conn: sa.Connection) -> None:
    meta = sa.MetaData()
    sa.Table(
        "alerter_processed",
        meta,
        sa.Column("event_id", sa.String(128), primary_key=True),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Index("ix_alerter_processed_event_time", "event_time"),
    )
    meta.create_all(conn)

    _add_column(conn, "alert_events", "source_event_id", sa.String(128))
    _add_column(conn, "alert_events", "published_at", sa.DateTime(timezone=True))
    conn.execute(sa.text("UPDATE alert_events SET published_at = emitted_at"))
    conn.execute(sa.text("CREATE INDEX ix_alert_events_source_event ON alert_events (source_event_id)"))
    conn.execute(sa.text("DROP TABLE alerter_offsets"))
