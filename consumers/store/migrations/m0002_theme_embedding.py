"""The theme (topic) embedding beside the classifier embedding; live themes restart in its space.

Live and weekly themes now cluster on the model's topic embedding (the untuned split-layer
pool, docs/themes.md), a different vector space from the classifier embedding the old
centroids were means of: those centroids would compare against the wrong vectors with no
error (both are 384-d), so the live themes are cleared and rebuild from the stream. Rows
stored before this migration have no theme embedding; the weekly clustering falls back to
their classifier embedding.
"""

from __future__ import annotations

import sqlalchemy as sa

VERSION = 2
DESCRIPTION = "theme embedding column (float16); live themes restart in the theme-embedding space"


def upgrade(conn: sa.Connection) -> None:
    conn.execute(sa.text("ALTER TABLE enriched_feedback ADD COLUMN theme_embedding BYTEA" if conn.dialect.name == "postgresql"
                         else "ALTER TABLE enriched_feedback ADD COLUMN theme_embedding BLOB"))
    conn.execute(sa.text("DELETE FROM themes"))
