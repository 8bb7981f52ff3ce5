"""Aspect sentiments beside the message's verdict: {issue type: sentiment} per enriched row (schema v2).

Rows stored before stay NULL: the digest counts aspects only where they were recorded.
"""

from __future__ import annotations

import sqlalchemy as sa

VERSION = 3
DESCRIPTION = "aspect sentiments of each enriched row (JSON {issue_type: sentiment})"


def upgrade(conn: sa.Connection) -> None:
    conn.execute(sa.text("ALTER TABLE enriched_feedback ADD COLUMN aspect_sentiments JSON"))
