"""Topic specifications: the named streams of the pipeline and their configs."""

from __future__ import annotations

from dataclasses import dataclass, field

RAW = "feedback.raw"
NORMALIZED = "feedback.normalized"
ENRICHED = "feedback.enriched"
ALERTS = "feedback.alerts"
DEADLETTER = "feedback.deadletter"
DIGESTS = "feedback.digests"
CORRECTIONS = "feedback.corrections"

DAY_MS = 24 * 60 * 60 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    retention_ms: int
    cleanup_policy: str = "delete"
    description: str = ""
    extra_configs: dict[str, str] = field(default_factory=dict)

    def configs(self) -> dict[str, str]:
        return {
            "retention.ms": str(self.retention_ms),
            "cleanup.policy": self.cleanup_policy,
            **self.extra_configs,
        }


def topic_specs(partitions: int = 3, replication_factor: int = 1, prefix: str = "") -> list[TopicSpec]:
    """All topics, sized for one deployment (partitions bound stage parallelism)."""
    rf = replication_factor
    return [
        TopicSpec(prefix + RAW, partitions, rf, 7 * DAY_MS, description="raw channel events, may hold PII"),
        TopicSpec(prefix + NORMALIZED, partitions, rf, 7 * DAY_MS, description="clean, redacted, de-duplicated"),
        TopicSpec(prefix + ENRICHED, partitions, rf, 30 * DAY_MS, description="classified with theme"),
        TopicSpec(prefix + ALERTS, 1, rf, 30 * DAY_MS, description="priority alerts for ops (one partition: total order)"),
        TopicSpec(prefix + DEADLETTER, 1, rf, 30 * DAY_MS, description="what a stage could not handle, with original bytes"),
        TopicSpec(prefix + DIGESTS, 1, rf, 365 * DAY_MS, description="weekly digest announcements"),
        # The store holds every correction for training; the topic tells other systems (key: event id).
        TopicSpec(prefix + CORRECTIONS, 1, rf, 365 * DAY_MS, description="human corrections of predictions (feedback-miner label)"),
    ]
