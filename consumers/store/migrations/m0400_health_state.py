"""The ``pipeline_health`` flow's memory between runs (versions 400–499: pipeline operations).

One row per name; ``value`` is JSON (``pipelines.health.HealthMemory``): the
last lag and committed offsets per stage, the dead-letter count, the last model
check and the open health alerts, so the next run resolves what cleared.
"""

from __future__ import annotations

import sqlalchemy as sa

VERSION = 400
DESCRIPTION = "pipeline health state between runs of the health flow"


def upgrade(conn: sa.Connection) -> None:
    meta = sa.MetaData()
    sa.Table(
        "health_state",
        meta,
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    meta.create_all(conn)
