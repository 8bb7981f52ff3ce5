"""Index alerter buckets by bucket number: every batch prunes buckets older than the longest window."""

from __future__ import annotations

import sqlalchemy as sa

VERSION = 201
DESCRIPTION = "alerter buckets: index on bucket for pruning"


def upgrade(conn: sa.Connection) -> None:
    conn.execute(sa.text("CREATE INDEX ix_alerter_buckets_bucket ON alerter_buckets (bucket)"))
