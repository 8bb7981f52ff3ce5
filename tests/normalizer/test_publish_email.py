"""Wrapping .eml/.mbox files into raw e-mail events (publish --channel email)."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone
from pathlib import Path

from pipelines.publishing import Rejected, email_event, parse_email_files

FIXTURES = Path(__file__).parent / "fixtures"


def test_eml_becomes_one_event_keyed_by_the_sender() -> None:
    raw = (FIXTURES / "gbk_quoted_reply.eml").read_bytes()
    event = email_event(raw)
    assert event.customer.id == "wangkun@example.com"
    assert event.received_at == datetime(2026, 11, 16, 9, 30, tzinfo=timezone(timedelta(hours=8)))
    assert base64.b64decode(event.payload.mime_base64) == raw
    # Derived from the Message-ID: importing the file again gives the same id.
    assert event.event_id == email_event(raw).event_id and event.event_id.startswith("mail-")


def test_mbox_yields_every_message_and_rejects_what_is_not_mail() -> None:
    items = list(parse_email_files([FIXTURES / "two_messages.mbox", FIXTURES / "not_an_email.eml"]))
    events = [item for _, item in items if not isinstance(item, Rejected)]
    assert [e.customer.id for e in events] == ["customer1@example.com", "customer2@example.com"]
    [(number, rejected)] = [(n, item) for n, item in items if isinstance(item, Rejected)]
    assert number == 3 and "no From address" in rejected.error


def test_messages_over_the_event_size_limit_are_rejected() -> None:
    [(_, rejected)] = list(parse_email_files([FIXTURES / "utf8_multipart_attachment.eml"], max_bytes=1024))
    assert isinstance(rejected, Rejected) and rejected.reason == "too_large"
