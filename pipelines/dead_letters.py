"""Replaying dead letters: send the original bytes back to their source topic after a fix."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from consumers.kafka_io import make_producer, read_topic
from topics.schemas import DeadLetter
from topics.serde import DecodeError, decode
from topics.settings import Settings
from topics.specs import DEADLETTER

REPLAY_HEADER = "replayed_from"


@dataclass
class ReplayReport:
    selected: int = 0
    replayed: int = 0
    next_offset: int = 0  # pass as from_offset next time to replay only newer dead letters
    by_reason: dict[str, int] = field(default_factory=dict)


def select_dead_letters(
    entries: list[tuple[int, DeadLetter]], reason: str | None = None, stage: str | None = None, from_offset: int = 0
) -> list[tuple[int, DeadLetter]]:
    return [
        (offset, entry)
        for offset, entry in entries
        if offset >= from_offset and (reason is None or entry.reason.value == reason) and (stage is None or entry.stage == stage)
    ]


def replay_dead_letters(
    settings: Settings, reason: str | None = None, stage: str | None = None, from_offset: int = 0, dry_run: bool = False
) -> ReplayReport:
    records = read_topic(settings, DEADLETTER)
    entries = []
    for record in records:
        try:
            entries.append((record.offset, decode(DeadLetter, record.value)))
        except DecodeError:
            continue  # not written by us; nothing to replay
    chosen = select_dead_letters(entries, reason, stage, from_offset)
    report = ReplayReport(selected=len(chosen), next_offset=max((r.offset + 1 for r in records), default=from_offset))
    for _, entry in chosen:
        report.by_reason[entry.reason.value] = report.by_reason.get(entry.reason.value, 0) + 1
    if dry_run or not chosen:
        return report
    producer = make_producer(settings)
    try:
        futures = []
        for offset, entry in chosen:
            headers = [(k, v.encode()) for k, v in entry.headers.items()]
            headers.append((REPLAY_HEADER, f"{settings.topic(DEADLETTER)}@{offset}".encode()))
            key = base64.b64decode(entry.key_base64) if entry.key_base64 else None
            futures.append(producer.send(entry.source_topic, key=key, value=entry.original_bytes(), headers=headers))
        producer.flush()
        for future in futures:
            future.get(timeout=settings.kafka.request_timeout_ms / 1000)
            report.replayed += 1
    finally:
        producer.close()
    return report
