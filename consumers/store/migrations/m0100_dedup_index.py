"""Normalizer dedup index: one fingerprint per event and its MinHash LSH band keys.

Tables are spelled out here so this migration keeps creating exactly this shape.
"""

from __future__ import annotations

import sqlalchemy as sa

VERSION = 100
DESCRIPTION = "normalizer dedup index (exact keys, MinHash signatures, LSH bands)"


def upgrade(conn: sa.Connection) -> None:
    meta = sa.MetaData()
    sa.Table(
        "dedup_fingerprints",
        meta,
        sa.Column("event_id", sa.String(128), primary_key=True),
        sa.Column("customer_id", sa.String(200), nullable=False),
        sa.Column("exact_key", sa.String(64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("signature", sa.LargeBinary),
        sa.Column("duplicate_of", sa.String(128)),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Index("ix_dedup_fingerprints_exact", "exact_key", "received_at"),
        sa.Index("ix_dedup_fingerprints_received", "received_at"),
    )
    sa.Table(
        "dedup_bands",
        meta,
        sa.Column("band_key", sa.BigInteger, primary_key=True),
        sa.Column("event_id", sa.String(128), sa.ForeignKey("dedup_fingerprints.event_id", ondelete="CASCADE"), primary_key=True),
        sa.Index("ix_dedup_bands_event", "event_id"),
    )
    meta.create_all(conn)
