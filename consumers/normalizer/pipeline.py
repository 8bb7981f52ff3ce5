"""Raw event → normalized feedback: channel decoding, clean-up, redaction, truncation, language.

Pure: no I/O. Dedup is applied afterwards by the stage (it needs the index).
"""

from __future__ import annotations

import base64
import re
from collections import Counter
from dataclasses import dataclass, field

from consumers.normalizer.app_channel import parse_app
from consumers.normalizer.email_channel import EmailDecodeError, decode_email
from consumers.normalizer.html_text import html_body_text
from consumers.normalizer.pii import pseudonymise, redact, redact_identifier, redact_value
from consumers.normalizer.replies import strip_replies
from consumers.normalizer.social_channel import parse_social
from consumers.normalizer.text_normalize import clean_text, detect_language, truncate
from topics.schemas import AppPayload, Customer, EmailPayload, NormalizedFeedback, RawFeedback, SocialPayload
from topics.settings import ChannelNormalizeSettings, ChannelSettings

_MAX_SUBJECT_CHARS = 300
# Signals that identify a post or link to it: redacted, but long ids that pass Luhn by chance are kept.
_IDENTIFIER_SIGNALS = ("post_id", "post_url")
_LOOKS_LIKE_HTML = re.compile(r"<(?:html|body|div|p|br|table|span)\b[^>]*>", re.I)


class PayloadError(ValueError):
    """The event is valid but its channel payload cannot be turned into text (dead letter: decode_failed)."""


@dataclass
class ChannelText:
    text: str
    subject: str | None = None
    flags: list[str] = field(default_factory=list)
    signals: dict[str, object] = field(default_factory=dict)


def _email_text(payload: EmailPayload) -> ChannelText:
    flags: list[str] = []
    signals: dict[str, object] = {}
    subject = payload.subject
    body = payload.body or ""
    if payload.mime_base64:
        try:
            content = decode_email(base64.b64decode(payload.mime_base64))
        except EmailDecodeError as exc:
            raise PayloadError(f"e-mail: {exc}") from exc
        subject = content.subject or subject
        body = content.body
        flags.extend(content.flags)
        signals.update(content.signals)
    elif _LOOKS_LIKE_HTML.search(body):
        # Some integrations pass the HTML part as the body.
        body, quote_removed = html_body_text(body)
        flags.append("html_fallback")
        if quote_removed:
            flags.append("quoted_reply_removed")
    stripped = strip_replies(body)
    flags.extend(f for f in stripped.flags if f not in flags)
    text = stripped.text
    if not text.strip() and subject:
        # A subject-only mail ("退款还没到账") still says something.
        text = subject
        flags.append("subject_only")
    return ChannelText(text, subject, flags, signals)


def channel_text(event: RawFeedback) -> ChannelText:
    payload = event.payload
    if isinstance(payload, EmailPayload):
        return _email_text(payload)
    if isinstance(payload, SocialPayload):
        content = parse_social(payload)
        return ChannelText(content.text, None, content.flags, content.signals)
    if isinstance(payload, AppPayload):
        content = parse_app(payload)
        return ChannelText(content.text, None, content.flags, content.signals)
    raise PayloadError(f"no decoder for payload kind {payload.kind!r}")  # pragma: no cover - schema forbids it


def _clean_and_redact(text: str, settings: ChannelNormalizeSettings, pii: Counter[str]) -> tuple[str, list[str], list[str]]:
    cleaned = clean_text(text, settings.opencc_config)
    redaction = redact(cleaned.text)
    pii.update(redaction.counts)
    return redaction.text, cleaned.flags, cleaned.emoji


def _redact_signals(signals: dict[str, object], pii: Counter[str]) -> dict[str, object]:
    """Every string in the channel signals, at any depth, keys included (device names, URLs, repost authors …)."""
    redacted: dict[str, object] = {}
    for name, value in signals.items():
        if name in _IDENTIFIER_SIGNALS and isinstance(value, str):
            redacted[name] = redact_identifier(value, pii)
        elif name == "repost_of" and isinstance(value, dict):
            # Its text was cleaned and redacted with the other texts.
            redacted[name] = {k: v if k == "text" else redact_value(v, pii) for k, v in value.items()}
        else:
            redacted[name] = redact_value(value, pii)
    return redacted


def normalize(
    event: RawFeedback, settings: ChannelNormalizeSettings | None = None, pseudonym_key: str | bytes | None = None
) -> NormalizedFeedback:
    """The normalized, redacted form of one raw event; raises PayloadError when there is no text to mine.

    A customer id that is an e-mail address or phone number becomes a keyed pseudonym
    (``pseudonym_key``, default: the local-use key of ``channels.pseudonym_key``).
    """
    settings = settings or ChannelNormalizeSettings()
    if pseudonym_key is None:
        pseudonym_key = ChannelSettings().pseudonym_key.get_secret_value()
    source = channel_text(event)
    pii: Counter[str] = Counter()
    flags = list(source.flags)
    signals = dict(source.signals)

    text, text_flags, emoji = _clean_and_redact(source.text, settings, pii)
    flags.extend(f for f in text_flags if f not in flags)
    if emoji:
        signals["emoji"] = emoji
    subject = None
    if source.subject:
        subject, _, _ = _clean_and_redact(source.subject, settings, pii)
        subject, _ = truncate(subject.replace("\n", " "), _MAX_SUBJECT_CHARS)
        subject = subject or None
    if not text:
        raise PayloadError("no text left after decoding and clean-up (only mentions, links or markup)")

    text, truncated = truncate(text, settings.max_text_chars)
    if truncated:
        flags.append("truncated")
        signals["original_chars"] = len(source.text)
    language = detect_language(text, settings.min_chinese_share)
    if language != "zh":
        flags.append("non_chinese")
    # Tags and emoticon codes get the same Unicode and script treatment as the text ([淚] → [泪]).
    for name in ("tags", "emoticons"):
        if isinstance(signals.get(name), list):
            signals[name] = [clean_text(str(v), settings.opencc_config).text for v in signals[name]]
    # The reposted original (someone else's words) is cleaned and redacted like the text; every other
    # string in the signals and in the metadata (keys too) is redacted as it is.
    repost = signals.get("repost_of")
    if isinstance(repost, dict) and isinstance(repost.get("text"), str):
        repost_text, _, _ = _clean_and_redact(repost["text"], settings, pii)
        signals["repost_of"] = {**repost, "text": repost_text}
    signals = _redact_signals(signals, pii)
    metadata = redact_value(event.metadata, pii)
    customer = event.customer
    customer_id = pseudonymise(customer.id, pseudonym_key)
    if customer_id != customer.id:
        customer = Customer(id=customer_id, tier=customer.tier)
    return NormalizedFeedback(
        event_id=event.event_id,
        channel=event.channel,
        source=event.source,
        received_at=event.received_at,
        customer=customer,
        text=text,
        subject=subject,
        language=language,
        flags=flags,
        signals=signals,
        pii=dict(pii),
        metadata=metadata,
    )
