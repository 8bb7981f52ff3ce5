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
from typing import Any

from kafka.errors import KafkaError

from consumers.kafka_io import make_producer
from topics.schemas import RawFeedback, escape_surrogates
from topics.serde import DecodeError, decode, describe_validation_error, encode, encode_key, make_headers
from topics.settings import Settings
from topics.specs import RAW


@dataclass
class Rejected:
    """A line (or message) that was not published: ``reason`` is the stages' dead-letter reason
    for invalid input, or ``not_sent`` / ``not_acknowledged`` when Kafka failed."""

    line: int
    reason: str
    error: str


@dataclass
class PublishReport:
    accepted: list[str] = field(default_factory=list)  # event ids, in input order
    rejected: list[Rejected] = field(default_factory=list)
    accepted_lines: list[int] = field(default_factory=list)  # their line numbers
    # Valid lines that Kafka did not take: sent but not acknowledged, or never sent once publishing stopped.
    unsent: list[Rejected] = field(default_factory=list)
    # The Kafka error that stopped publishing (then re-raised), if any.
    error: str | None = None


def parse_lines(lines: Iterable[str | bytes], max_bytes: int | None = None) -> Iterator[tuple[int, RawFeedback | Rejected]]:
    """Validate JSONL input: yields (line number, event or rejection). Blank lines are skipped.

    Each line is decoded exactly as the normalizer decodes a message (``topics.serde.decode``),
    so a rejection carries the reason the line would be dead-lettered with; what is
    accepted can always be encoded.
    """
    for number, line in enumerate(lines, start=1):
        raw = line if isinstance(line, bytes) else line.encode("utf-8", "surrogatepass")
        raw = raw.strip()
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte order mark from an editor
            raw = raw[3:].strip()
        if not raw:
            continue
        try:
            yield number, decode(RawFeedback, raw, max_bytes=max_bytes)
        except DecodeError as exc:
            yield number, Rejected(number, exc.reason, str(exc))
        except Exception as exc:  # noqa: BLE001 - a line never stops the file; the stage would say processing_error
            yield number, Rejected(number, "processing_error", escape_surrogates(f"{type(exc).__name__}: {exc}"))


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
    report: PublishReport | None = None,
) -> PublishReport:
    """Produce valid events (acks=all, key = customer id) and collect rejections.

    Every item ends up in ``report``: accepted (acknowledged), rejected (invalid, or an
    event that cannot be serialised), or unsent (Kafka failed). Pass ``report`` to keep
    what is known when an error (a KafkaError, normally) stops publishing: the rest of
    the items are still validated and reported, then the error is raised.
    """
    report = report if report is not None else PublishReport()
    topic = settings.topic(RAW)
    timeout_s = settings.kafka.request_timeout_ms / 1000
    items = iter(items)
    pending: list[tuple[int, str, Any]] = []  # (line, event id, send future)
    failure: BaseException | None = None
    producer = None
    try:
        try:
            producer = make_producer(settings)
            _send_all(producer, topic, items, report, pending, on_progress)
            producer.flush()
        except Exception as exc:  # noqa: BLE001 - Kafka failed (or worse): account for every line, then raise it
            failure = exc
            report.error = _error_text(exc)
            if producer is not None:
                try:
                    producer.flush(timeout=timeout_s)  # what was already sent gets its chance to be acknowledged
                except KafkaError:
                    pass
        for number, event_id, future in pending:
            # After a flush every future is done; after a failure some may not be: never wait on those.
            if not getattr(future, "is_done", True):
                report.unsent.append(Rejected(number, "not_acknowledged", f"no acknowledgement within {timeout_s:g} s"))
                continue
            try:
                future.get(timeout=timeout_s)
            except Exception as exc:  # noqa: BLE001 - the broker refused or lost it
                failure = failure or exc
                report.unsent.append(Rejected(number, "not_acknowledged", _error_text(exc)))
            else:
                report.accepted.append(event_id)
                report.accepted_lines.append(number)
        if report.unsent and report.error is None:
            report.error = _error_text(failure) if failure is not None else report.unsent[0].error
        if report.error is not None:
            for number, item in items:  # the rest of the input is still checked and reported
                if isinstance(item, Rejected):
                    report.rejected.append(item)
                else:
                    report.unsent.append(Rejected(number, "not_sent", f"publishing stopped: {report.error}"))
                if on_progress:
                    on_progress()
            raise failure if failure is not None else KafkaError(report.error)
        return report
    finally:
        if producer is not None:
            try:
                producer.close(timeout=timeout_s if report.error else None)
            except KafkaError:
                pass


def _send_all(producer, topic: str, items: Iterator[tuple[int, RawFeedback | Rejected]], report: PublishReport, pending: list, on_progress) -> None:
    """Send each valid event (appending its future to ``pending``); rejections go to the report."""
    for number, item in items:
        if isinstance(item, Rejected):
            report.rejected.append(item)
        else:
            try:
                value = encode(item)
            except Exception as exc:  # noqa: BLE001 - cannot happen for a validated event; never fatal if it does
                report.rejected.append(Rejected(number, "schema_invalid", escape_surrogates(f"event cannot be serialised: {type(exc).__name__}: {exc}")))
            else:
                try:
                    future = producer.send(topic, key=encode_key(item.key()), value=value, headers=make_headers(item))
                except Exception as exc:
                    report.unsent.append(Rejected(number, "not_sent", _error_text(exc)))
                    raise
                pending.append((number, item.event_id, future))
        if on_progress:
            on_progress()


def _error_text(error: object) -> str:
    if isinstance(error, BaseException):
        text = str(error).strip()
        name = type(error).__name__
        return escape_surrogates(text if text.startswith(name) else f"{name}: {text}" if text else name)
    return str(error)
