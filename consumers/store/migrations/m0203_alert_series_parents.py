"""The parent series of each live theme the alerter counts (``theme:<id>`` → ``issue_type:<label>``).

A theme younger than ``new_series_min_age_min`` spikes only against its parent, the issue type of its
latest message. Kept in memory only, a restarted alerter lost it and judged young themes differently
from one that ran through (it could not judge them at all). ``bucket`` is the latest event-time bucket
of the theme: rows older than the detector's horizon are pruned with the buckets.
"""

from __future__ import annotations

import sqlalchemy as sa

VERSION = 203
DESCRIPTION = "alerter: the parent (issue type) of each live theme series, for restarts"


def upgrade(conn: sa.Connection) -> None:
    meta = sa.MetaData()
    sa.Table(
        "alerter_series_parents",
        meta,
        sa.Column("series", sa.String(400), primary_key=True),
        sa.Column("parent", sa.String(400), nullable=False),
        sa.Column("bucket", sa.BigInteger, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Index("ix_alerter_series_parents_bucket", "bucket"),
        sa.Index("ix_alerter_series_parents_version", "version"),
    )
    meta.create_all(conn)
