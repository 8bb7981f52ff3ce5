"""Publishing raw feedback: parse and validate lines, then produce to ``feedback.raw``."""

from __future__ import annotations

import base64
import hashlib
import mailbox
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email import policy
from email.parser import BytesHeaderParser
from email.utils import parseaddr, parsedate_to_datetime
from pathlib import Path

from consumers.kafka_io import make_producer, send
from topics.schemas import RawFeedback
from topics.serde import DecodeError, decode, describe_validation_error
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


def email_messages(path: Path) -> Iterator[bytes]:
    """Raw RFC 5322 messages from one .eml file or every message of an .mbox file."""
    if path.suffix.lower() == ".mbox":
        box = mailbox.mbox(str(path), factory=None, create=False)
        try:
            for key in box.iterkeys():
                yield box.get_bytes(key)
        finally:
            box.close()
    else:
        yield path.read_bytes()


def email_event(raw: bytes, source: str = "email-import") -> RawFeedback:
    """Wrap a raw message into a RawFeedback event (mime_base64); the customer is the From address.

    The event id is derived from the Message-ID (or the bytes), so publishing a file twice
    produces the same ids and the normalizer links the second copy as a duplicate.
    """
    headers = BytesHeaderParser(policy=policy.compat32).parsebytes(raw)
    sender = parseaddr(str(headers.get("From", "")))[1].strip().lower()
    if not sender:
        raise ValueError("message has no From address (the customer id)")
    identity = str(headers.get("Message-ID", "")).strip().encode() or raw
    try:
        received = parsedate_to_datetime(str(headers.get("Date")))
        received = received if received.tzinfo else received.replace(tzinfo=timezone.utc)
    except (TypeError, ValueError, IndexError):
        received = datetime.now(timezone.utc)
    return RawFeedback(
        event_id="mail-" + hashlib.sha256(identity).hexdigest()[:32],
        channel="email",
        source=source,
        received_at=received,
        customer={"id": sender[:200]},
        payload={"kind": "email", "mime_base64": base64.b64encode(raw).decode("ascii")},
    )


def parse_email_files(paths: Iterable[Path], max_bytes: int | None = None, source: str = "email-import") -> Iterator[tuple[int, RawFeedback | Rejected]]:
    """Events from .eml/.mbox files: yields (message number, event or rejection)."""
    from pydantic import ValidationError

    from topics.serde import encode

    number = 0
    for path in paths:
        for raw in email_messages(path):
            number += 1
            try:
                event = email_event(raw, source)
            except ValidationError as exc:
                yield number, Rejected(number, "schema_invalid", f"{path.name}: {describe_validation_error(exc)}")
                continue
            except ValueError as exc:
                yield number, Rejected(number, "schema_invalid", f"{path.name}: {exc}")
                continue
            size = len(encode(event))
            if max_bytes is not None and size > max_bytes:
                yield number, Rejected(number, "too_large", f"{path.name}: event is {size} bytes, limit is {max_bytes}")
                continue
            yield number, event


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
