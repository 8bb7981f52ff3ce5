"""Publishing raw feedback: parse and validate lines, then produce to ``feedback.raw``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from consumers.kafka_io import make_producer, send
from topics.schemas import RawFeedback
from topics.serde import DecodeError, decode
from topics.settings import Settings
from topics.specs import RAW


@dataclass
class Rejected:
    line: int
    reason: str
    error: str


@dataclass
class PublishReport:
    accepted: list[str] = field(default_factory=list)  # event ids
    rejected: list[Rejected] = field(default_factory=list)


def parse_lines(lines: Iterable[str | bytes], max_bytes: int | None = None) -> Iterator[tuple[int, RawFeedback | Rejected]]:
    """Validate JSONL input: yields (line number, event or rejection). Blank lines are skipped."""
    for number, line in enumerate(lines, start=1):
        raw = line if isinstance(line, bytes) else line.encode("utf-8")
        if not raw.strip():
            continue
        try:
            yield number, decode(RawFeedback, raw.strip(), max_bytes=max_bytes)
        except DecodeError as exc:
            yield number, Rejected(number, exc.reason, str(exc))


def publish_events(
    settings: Settings,
    items: Iterable[tuple[int, RawFeedback | Rejected]],
    on_progress: Callable[[], None] | None = None,
) -> PublishReport:
    """Produce valid events (acks=all, key = customer id) and collect rejections."""
    report = PublishReport()
    producer = make_producer(settings)
    topic = settings.topic(RAW)
    futures = []
    try:
        for _, item in items:
            if isinstance(item, Rejected):
                report.rejected.append(item)
            else:
                futures.append((item.event_id, send(producer, topic, item, item.key())))
            if on_progress:
                on_progress()
        producer.flush()
        for event_id, future in futures:
            future.get(timeout=settings.kafka.request_timeout_ms / 1000)
            report.accepted.append(event_id)
    finally:
        producer.close()
    return report
