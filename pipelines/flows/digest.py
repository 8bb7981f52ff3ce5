"""The weekly theme digest as a Prefect flow (scheduled weekly in a deployment)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from prefect import flow, get_run_logger

from consumers.themes.weeks import iso_week
from topics.settings import Settings


def last_complete_week(now: datetime | None = None) -> str:
    return iso_week((now or datetime.now(timezone.utc)) - timedelta(weeks=1))


@flow(name="weekly-theme-digest")
def weekly_digest_flow(week: str | None = None, announce: bool = True) -> dict:
    """Cluster one ISO week (default: the last complete one), write the digest, announce it on feedback.digests."""
    from pipelines.digest.build import kafka_announcer, run_digest

    settings = Settings()
    week = week or last_complete_week()
    announcer = kafka_announcer(settings) if announce and settings.kafka.bootstrap_servers else None
    outcome = run_digest(settings, week, announce=announcer)
    logger = get_run_logger()
    logger.info("digest %s: %d messages, %d themes → %s", week, outcome.digest.total, len(outcome.digest.themes), outcome.html_path)
    if announce and announcer is None:
        logger.warning("no Kafka bootstrap servers configured: the digest was written but not announced")
    return outcome.announcement.model_dump(mode="json")
