"""E-mail: decode a raw RFC 5322 message into subject and body text.

Chinese mail arrives in GB2312/GBK/GB18030, Big5 or UTF-8, often mislabelled
(GBK characters in a "gb2312" part, raw 8-bit subjects). Labels are widened
to their supersets and, failing that, the other common charsets are tried.
A message whose structure is broken or whose text cannot be decoded raises
``EmailDecodeError`` (the stage dead-letters it with ``decode_failed``).
"""

from __future__ import annotations

import email
import email.errors
import re
from dataclasses import dataclass, field
from email import policy
from email.header import decode_header
from email.message import EmailMessage, Message

from consumers.normalizer.html_text import html_body_text


class EmailDecodeError(ValueError):
    """The message cannot be turned into text."""


# Decode with the superset of the declared charset: senders label GBK text as gb2312, HKSCS as big5.
_SUPERSETS = {
    "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "cp936": "gb18030", "euc-cn": "gb18030",
    "gb_2312-80": "gb18030", "hz-gb-2312": "hz", "big5": "big5hkscs", "x-big5": "big5hkscs", "cp950": "big5hkscs",
    "big5-hkscs": "big5hkscs", "us-ascii": "utf-8", "ascii": "utf-8", "unknown-8bit": "utf-8",
}
_FALLBACKS = ("utf-8", "gb18030", "big5hkscs")
# Structural defects after which the parts cannot be trusted.
_FATAL_DEFECTS = (
    email.errors.StartBoundaryNotFoundDefect,
    email.errors.MultipartInvariantViolationDefect,
    email.errors.NoBoundaryInMultipartDefect,
    email.errors.InvalidBase64LengthDefect,
)
# Reply and forward prefixes say nothing about the complaint.
_SUBJECT_PREFIX = re.compile(r"^\s*(?:(?:re|fw|fwd|aw|回复|答复|转发|回覆|轉寄|轉發)\s*[:：]\s*)+", re.I)
# A body where more than this share of characters had to be replaced is not text.
_MAX_REPLACED_SHARE = 0.01


@dataclass
class EmailContent:
    subject: str | None
    body: str
    flags: list[str] = field(default_factory=list)
    signals: dict[str, object] = field(default_factory=dict)


def _codec(label: str | None) -> str | None:
    if not label:
        return None
    label = label.strip().strip('"').lower()
    return _SUPERSETS.get(label, label)


def _mostly_decodes(data: bytes, codec: str) -> str | None:
    try:
        text = data.decode(codec, errors="replace")
    except LookupError:
        return None
    return text if text.count("\ufffd") <= max(1, _MAX_REPLACED_SHARE * len(text)) else None


def decode_bytes(data: bytes, label: str | None) -> tuple[str, bool]:
    """Text from bytes: the declared charset (widened), a few stray bytes repaired, else UTF-8/GB18030/Big5.

    Returns (text, repaired). A label that almost fits wins over a fallback that fits by accident
    (UTF-8 Chinese often decodes as GB18030 mojibake without an error).
    """
    declared = _codec(label)
    if declared:
        try:
            return data.decode(declared), False
        except (UnicodeDecodeError, LookupError):
            repaired = _mostly_decodes(data, declared)
            if repaired is not None:
                return repaired, True
    for codec in _FALLBACKS:
        try:
            return data.decode(codec), False
        except UnicodeDecodeError:
            continue
    raise EmailDecodeError(f"text is not valid {label or 'UTF-8/GB18030/Big5'}")


def decode_subject(message: Message, fallback_charset: str | None) -> str | None:
    """The Subject header: RFC 2047 words in any charset, or raw 8-bit bytes in the body's charset."""
    raw = next((value for name, value in message.raw_items() if name.lower() == "subject"), None)
    if raw is None:
        return None
    # The bytes parser keeps undecodable 8-bit header bytes as surrogates.
    raw = str(raw).replace("\r", "").replace("\n", "")
    words = []
    for chunk, charset in decode_header(raw):
        if isinstance(chunk, str):
            chunk = chunk.encode("ascii", "surrogateescape")
        try:
            text, _ = decode_bytes(chunk, charset or fallback_charset)
        except EmailDecodeError:
            text = chunk.decode("utf-8", errors="replace")
        words.append(text)
    subject = _SUBJECT_PREFIX.sub("", "".join(words)).strip()
    return subject or None


def _is_attachment(part: Message) -> bool:
    return part.get_content_disposition() == "attachment" or (
        part.get_filename() is not None and part.get_content_maintype() != "text"
    )


def _part_text(part: Message) -> tuple[str, bool]:
    payload = part.get_payload(decode=True)
    if payload is None:
        return "", False
    return decode_bytes(payload, part.get_content_charset())


def _check_structure(message: Message) -> list[str]:
    defects = []
    for part in message.walk():
        for defect in part.defects:
            if isinstance(defect, _FATAL_DEFECTS):
                raise EmailDecodeError(f"broken MIME structure: {type(defect).__name__}")
            defects.append(type(defect).__name__)
    return defects


def parse_message(raw: bytes) -> EmailMessage:
    if not raw.strip():
        raise EmailDecodeError("empty message")
    message = email.message_from_bytes(raw, policy=policy.default)
    if not any(name.lower() in ("from", "subject", "content-type", "date", "message-id") for name in message.keys()):
        raise EmailDecodeError("no RFC 5322 headers found")
    return message


def decode_email(raw: bytes) -> EmailContent:
    """Subject and the best text body of a raw message (text/plain first, HTML as fallback)."""
    try:
        message = parse_message(raw)
        defects = _check_structure(message)
        plain: str | None = None
        html: str | None = None
        attachments = 0
        charset = None
        repaired = False
        for part in message.walk():
            if part.is_multipart():
                continue
            if _is_attachment(part):
                attachments += 1
                continue
            content_type = part.get_content_type()
            if content_type == "text/plain" and plain is None:
                plain, fixed = _part_text(part)
                charset, repaired = part.get_content_charset(), repaired or fixed
            elif content_type == "text/html" and html is None:
                html, fixed = _part_text(part)
                charset, repaired = charset or part.get_content_charset(), repaired or fixed
        subject = decode_subject(message, charset)
    except EmailDecodeError:
        raise
    except (LookupError, UnicodeError, ValueError, TypeError, IndexError) as exc:
        raise EmailDecodeError(f"cannot parse message: {type(exc).__name__}: {exc}") from exc

    flags: list[str] = []
    if defects:
        flags.append("mime_defects")
    if repaired:
        flags.append("charset_repaired")
    if plain is not None and plain.strip():
        body = plain
    elif html is not None:
        body, quote_removed = html_body_text(html)
        flags.append("html_fallback")
        if quote_removed:
            flags.append("quoted_reply_removed")
    elif subject:
        body = ""
    else:
        raise EmailDecodeError("message has neither a text/plain nor a text/html part, nor a subject")
    signals: dict[str, object] = {}
    if attachments:
        signals["attachments"] = attachments
    return EmailContent(subject, body, flags, signals)
