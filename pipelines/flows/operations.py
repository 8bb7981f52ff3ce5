"""Operational Prefect flows: topic provisioning, dead-letter replay, backfill from files."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from prefect import flow, get_run_logger

from pipelines.publishing import parse_lines, publish_events
from pipelines.dead_letters import replay_dead_letters
from topics.admin import ensure_topics
from topics.settings import Settings


@flow(name="provision-topics")
def provision_topics_flow() -> list[dict]:
    """Create missing topics and report drift (never deletes)."""
    statuses = ensure_topics(Settings())
    logger = get_run_logger()
    for st in statuses:
        logger.info("%s: %s %s", st.name, st.action, "; ".join(st.drift))
    return [asdict(st) for st in statuses]


@flow(name="replay-dead-letters")
def replay_dead_letters_flow(reason: str | None = None, stage: str | None = None, from_offset: int = 0, dry_run: bool = False) -> dict:
    """Send dead-lettered originals back to their source topic (after the cause was fixed)."""
    report = replay_dead_letters(Settings(), reason=reason, stage=stage, from_offset=from_offset, dry_run=dry_run)
    get_run_logger().info("replayed %d of %d selected; next offset %d", report.replayed, report.selected, report.next_offset)
    return asdict(report)


@flow(name="backfill")
def backfill_flow(path: str) -> dict:
    """Publish a JSONL file of historic raw feedback (validated; rejected lines reported)."""
    settings = Settings()
    with Path(path).open("rb") as lines:
        report = publish_events(settings, parse_lines(lines, settings.runtime.max_event_bytes))
    get_run_logger().info("backfill: %d accepted, %d rejected", len(report.accepted), len(report.rejected))
    return {"accepted": len(report.accepted), "rejected": [asdict(r) for r in report.rejected]}
