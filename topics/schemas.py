"""Versioned event schemas: the contract between integrations and stages.

Each event model carries ``SCHEMA`` (a name) and ``VERSION``; both travel in
Kafka headers. Adding an optional field is a compatible change; anything else
bumps ``VERSION`` and the JSON Schema files exported for integrators.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import uuid
from datetime import datetime, timezone
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError


class Channel(StrEnum):
    email = "email"
    social = "social"
    app = "app"


class IssueType(StrEnum):
    """The fixed issue-type taxonomy (DESIGN.md)."""

    logistics = "logistics"
    product_quality = "product_quality"
    price_billing = "price_billing"
    service_attitude = "service_attitude"
    refund_aftersales = "refund_aftersales"
    technical = "technical"
    account_privacy = "account_privacy"
    policy_contract = "policy_contract"
    suggestion = "suggestion"
    praise = "praise"
    other = "other"


ISSUE_TYPE_ZH: dict[IssueType, str] = {
    IssueType.logistics: "物流配送",
    IssueType.product_quality: "产品质量",
    IssueType.price_billing: "价格费用",
    IssueType.service_attitude: "客服服务",
    IssueType.refund_aftersales: "售后退款",
    IssueType.technical: "技术故障",
    IssueType.account_privacy: "账户安全",
    IssueType.policy_contract: "政策合同",
    IssueType.suggestion: "功能建议",
    IssueType.praise: "表扬",
    IssueType.other: "其他",
}


class SentimentLabel(StrEnum):
    negative = "negative"
    neutral = "neutral"
    positive = "positive"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_event_id() -> str:
    return uuid.uuid4().hex


# --- what every event must be to be serialisable -----------------------------
#
# An event that validates must encode (``topics.serde.encode``) and decode again.
# JSON text can carry what Python cannot write back out or what breaks later
# work: lone UTF-16 surrogates ("\ud800" escapes), nesting deep enough to hit
# recursion limits, integers beyond Python's int/str conversion limit, and
# times that overflow when converted to UTC or shifted by a window.

MAX_JSON_DEPTH = 32
"""Deepest nesting of objects and arrays in an event, the event object itself being level 1."""
MAX_INT_DIGITS = 100
"""Most digits an integer in an event may have."""
# Stages convert event times to UTC and shift them by windows (dedup, baselines):
# a year of room on either side of what ``datetime`` can hold keeps that arithmetic safe.
EARLIEST_EVENT_TIME = datetime(2, 1, 1, tzinfo=timezone.utc)
LATEST_EVENT_TIME = datetime(9998, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc)

_SURROGATE = re.compile("[\ud800-\udfff]")
_INT_LIMIT = 10**MAX_INT_DIGITS
_MAX_REPORTED = 10


def escape_surrogates(text: str) -> str:
    """``text`` with any lone surrogate written as its escape (``\\ud800``), so it can be encoded."""
    return text if text.isascii() else text.encode("utf-8", "backslashreplace").decode("utf-8")


def _surrogate_in(text: str) -> str | None:
    if text.isascii():
        return None
    found = _SURROGATE.search(text)
    return f"\\u{ord(found.group()):04x}" if found else None


def unrepresentable(data: Any, max_depth: int = MAX_JSON_DEPTH, max_int_digits: int = MAX_INT_DIGITS) -> list[InitErrorDetails]:
    """Errors (with their locations) for whatever in ``data`` JSON cannot carry back out; [] if none.

    Walks without recursion, so any depth is safe to inspect.
    """
    int_limit = _INT_LIMIT if max_int_digits == MAX_INT_DIGITS else 10**max_int_digits
    if _all_representable(data, max_depth, int_limit):
        return []
    errors: list[InitErrorDetails] = []
    stack: list[tuple[Any, tuple[str | int, ...], int]] = [(data, (), 0)]
    while stack and len(errors) < _MAX_REPORTED:
        value, loc, depth = stack.pop()
        if isinstance(value, str):
            code = _surrogate_in(value)
            if code:
                errors.append(_error("lone_surrogate", "lone surrogate {code} is not valid text", loc, {"code": code}))
            continue
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int):
            if -int_limit >= value or value >= int_limit:
                errors.append(_error("number_too_large", "integer has more than {limit} digits", loc, {"limit": max_int_digits}))
            continue
        if isinstance(value, float):
            if not math.isfinite(value):
                errors.append(_error("number_not_finite", "number {value} is not finite", loc, {"value": str(value)}))
            continue
        if isinstance(value, BaseModel):
            value = {**value.__dict__, **(value.__pydantic_extra__ or {})}
        if isinstance(value, dict):
            items = list(value.items())
        elif isinstance(value, (list, tuple)):
            items = list(enumerate(value))
        else:
            continue  # datetimes and other Python values: their fields validate them
        if depth + 1 > max_depth:
            errors.append(_error("too_deep", "nested deeper than {limit} levels", loc, {"limit": max_depth}))
            continue
        for key, item in reversed(items):
            if isinstance(key, str):
                code = _surrogate_in(key)
                if code:
                    errors.append(_error("lone_surrogate", "key has lone surrogate {code}, which is not valid text", (*loc, escape_surrogates(key)), {"code": code}))
                    continue
            stack.append((item, (*loc, key), depth + 1))
    return errors


def _escaped(value: Any) -> Any:
    """``value`` with lone surrogates in strings and keys escaped (shallow: dead letters are flat)."""
    if isinstance(value, str):
        return escape_surrogates(value)
    if isinstance(value, dict):
        return {_escaped(k): (_escaped(v) if isinstance(v, (str, dict)) else v) for k, v in value.items()}
    return value


def _scalar_ok(value: Any, int_limit: int) -> bool:
    if isinstance(value, str):  # str enums too
        return value.isascii() or _SURROGATE.search(value) is None
    if isinstance(value, bool):
        return True
    if isinstance(value, int):
        return -int_limit < value < int_limit
    if isinstance(value, float):
        return math.isfinite(value)
    return True  # datetimes and other Python values: their fields validate them


def _all_representable(data: Any, max_depth: int, int_limit: int) -> bool:
    """The fast path of ``unrepresentable``: True when nothing needs reporting (no locations kept)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        kind = type(value)
        if kind is not dict and kind is not list and isinstance(value, BaseModel):
            value = {**value.__dict__, **(value.__pydantic_extra__ or {})}
            kind = dict
        if kind is dict or isinstance(value, dict):
            children = value.values()
            for key in value:
                if not (type(key) is str and key.isascii()) and not _scalar_ok(key, int_limit):
                    return False
        elif kind is list or isinstance(value, (list, tuple)):
            children = value
        else:
            if not _scalar_ok(value, int_limit):
                return False
            continue
        if depth > max_depth:
            return False
        for child in children:
            kind = type(child)
            if kind is str:
                if not child.isascii() and _SURROGATE.search(child) is not None:
                    return False
            elif kind is dict or kind is list:
                stack.append((child, depth + 1))
            elif kind is int:
                if not -int_limit < child < int_limit:
                    return False
            elif child is None or kind is bool:
                continue
            elif isinstance(child, (dict, list, tuple, BaseModel)):
                stack.append((child, depth + 1))
            elif not _scalar_ok(child, int_limit):
                return False
    return True


def _error(kind: str, template: str, loc: tuple[str | int, ...], context: dict[str, Any]) -> InitErrorDetails:
    return InitErrorDetails(type=PydanticCustomError(kind, template, context), loc=loc, input=None)


def _representable_time(value: datetime) -> datetime:
    try:
        utc = value.astimezone(timezone.utc)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST_EVENT_TIME <= utc <= LATEST_EVENT_TIME:
        raise PydanticCustomError(
            "datetime_range",
            "year out of range: {value} must lie between years {low} and {high} in UTC",
            {"value": value.isoformat(), "low": EARLIEST_EVENT_TIME.year, "high": LATEST_EVENT_TIME.year},
        )
    return value


EventTime = Annotated[AwareDatetime, AfterValidator(_representable_time)]
"""A time-zone-aware time that converts to UTC and can be shifted by a year either way."""


class _Strict(BaseModel):
    # Unknown fields are rejected so that a typo never silently drops data.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class Event(_Strict):
    """Base of every event that travels on a topic."""

    SCHEMA: ClassVar[str]
    VERSION: ClassVar[int] = 1
    # Versions a reader of this model accepts: an additive bump keeps reading the older events
    # (their new fields take defaults), so producers can be upgraded after their readers.
    READS: ClassVar[tuple[int, ...]] = (1,)

    @model_validator(mode="before")
    @classmethod
    def _representable(cls, data: Any, info: ValidationInfo) -> Any:
        # Before anything else: what validates here must also serialise (topics.serde.encode).
        # The validation context may set other limits: {"max_depth": …, "max_int_digits": …}.
        limits = info.context if isinstance(info.context, dict) else {}
        if limits.get("parsed_within_limits"):
            return data  # topics.serde.parse_json checked depth and numbers, and saw no surrogate escape
        errors = unrepresentable(data, limits.get("max_depth", MAX_JSON_DEPTH), limits.get("max_int_digits", MAX_INT_DIGITS))
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return data


class Customer(_Strict):
    id: str = Field(min_length=1, max_length=200)
    # Free-form tier; ``vip`` raises alert priority.
    tier: str | None = Field(default=None, max_length=50)


# --- channel payloads -------------------------------------------------------


class EmailPayload(_Strict):
    kind: Literal["email"] = "email"
    subject: str | None = None
    body: str | None = None
    # The raw RFC 5322 message, base64-encoded; decoded by the normalizer.
    mime_base64: str | None = None
    sender: str | None = None

    @model_validator(mode="after")
    def _has_content(self) -> EmailPayload:
        if not (self.body or self.mime_base64 or self.subject):
            raise ValueError("an email payload needs body, subject or mime_base64")
        return self

    @field_validator("mime_base64")
    @classmethod
    def _is_base64(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ValueError(f"mime_base64 is not valid base64: {exc}") from exc
        return value


class SocialPayload(_Strict):
    kind: Literal["social"] = "social"
    text: str = Field(min_length=1)
    platform: str | None = None
    post_id: str | None = None
    author: str | None = None
    url: str | None = None
    reposts: int | None = Field(default=None, ge=0)
    likes: int | None = Field(default=None, ge=0)


class AppPayload(_Strict):
    kind: Literal["app"] = "app"
    text: str = Field(min_length=1)
    rating: int | None = Field(default=None, ge=1, le=5)
    app_version: str | None = None
    os: str | None = None
    device: str | None = None
    store: str | None = None


Payload = EmailPayload | SocialPayload | AppPayload
_PAYLOAD_BY_CHANNEL: dict[str, type[BaseModel]] = {
    "email": EmailPayload,
    "social": SocialPayload,
    "app": AppPayload,
}


class RawFeedback(Event):
    """What channel integrations publish to ``feedback.raw``. Key: customer id."""

    SCHEMA: ClassVar[str] = "feedback.raw"

    event_id: str = Field(default_factory=new_event_id, min_length=1, max_length=128)
    channel: Channel
    source: str = Field(min_length=1, max_length=100, description="integration name")
    received_at: EventTime
    customer: Customer
    payload: Payload = Field(discriminator="kind")
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _payload_kind_from_channel(cls, data: Any) -> Any:
        # Integrators need not repeat the channel inside the payload.
        if isinstance(data, dict) and isinstance(data.get("payload"), dict):
            channel = data.get("channel")
            payload = data["payload"]
            # channel may be anything here (an object or a list is unhashable); the field reports it.
            if isinstance(channel, str) and channel in _PAYLOAD_BY_CHANNEL and "kind" not in payload:
                data = {**data, "payload": {**payload, "kind": channel}}
        return data

    @model_validator(mode="after")
    def _payload_matches_channel(self) -> RawFeedback:
        if self.payload.kind != self.channel.value:
            raise ValueError(f"payload kind {self.payload.kind!r} does not match channel {self.channel.value!r}")
        return self

    def key(self) -> str:
        return self.customer.id


class NormalizedFeedback(Event):
    """Clean, PII-redacted feedback on ``feedback.normalized``."""

    SCHEMA: ClassVar[str] = "feedback.normalized"

    event_id: str
    channel: Channel
    source: str
    received_at: EventTime
    customer: Customer
    # Normalised, redacted text: the only text that leaves the raw topic.
    text: str
    subject: str | None = None
    language: str = "zh"
    # e.g. truncated, non_chinese, html_fallback, quoted_reply_removed
    flags: list[str] = Field(default_factory=list)
    # Channel signals: rating, emoticons, tags, mention_count, url_count, app_version, os, device, repost_of …
    signals: dict[str, Any] = Field(default_factory=dict)
    # Count of redactions per PII type, e.g. {"phone": 1}.
    pii: dict[str, int] = Field(default_factory=dict)
    duplicate_of: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    normalized_at: AwareDatetime = Field(default_factory=utcnow)

    def key(self) -> str:
        return self.customer.id


class IssueTypeScore(_Strict):
    label: IssueType
    probability: float = Field(ge=0.0, le=1.0)


class Sentiment(_Strict):
    label: SentimentLabel
    score: float = Field(ge=-1.0, le=1.0)


class AspectSentiment(_Strict):
    """The writer's sentiment about one of the issue types a message raises."""

    issue_type: IssueType
    sentiment: SentimentLabel


class EnrichedFeedback(NormalizedFeedback):
    """Classified feedback on ``feedback.enriched`` (embeddings live in the store).

    v2 adds ``aspect_sentiments``; v1 events are still read (with none).
    """

    SCHEMA: ClassVar[str] = "feedback.enriched"
    VERSION: ClassVar[int] = 2
    READS: ClassVar[tuple[int, ...]] = (1, 2)

    primary_issue: IssueType
    # Every label that applies (primary first).
    issue_types: list[IssueType]
    # A probability per label of the taxonomy.
    issue_scores: list[IssueTypeScore]
    sentiment: Sentiment
    # One entry per label of issue_types, in that order: 物流很快但是质量很差 → logistics positive,
    # product_quality negative, while ``sentiment`` is the message's verdict (negative).
    aspect_sentiments: list[AspectSentiment] = Field(default_factory=list)
    theme_id: str | None = None
    model_version: str
    enriched_at: AwareDatetime = Field(default_factory=utcnow)


class DeadLetterReason(StrEnum):
    not_utf8 = "not_utf8"
    not_json = "not_json"
    not_object = "not_object"
    schema_invalid = "schema_invalid"
    too_large = "too_large"
    too_deep = "too_deep"
    number_too_large = "number_too_large"
    unsupported_version = "unsupported_version"
    decode_failed = "decode_failed"
    processing_error = "processing_error"


class DeadLetter(Event):
    """A message a stage could not handle, with everything needed to replay it."""

    SCHEMA: ClassVar[str] = "feedback.deadletter"

    stage: str
    reason: DeadLetterReason
    error: str
    source_topic: str
    partition: int | None = None
    offset: int | None = None
    key_base64: str | None = None
    original_base64: str
    headers: dict[str, str] = Field(default_factory=dict)
    event_id: str | None = None
    failed_at: AwareDatetime = Field(default_factory=utcnow)

    @model_validator(mode="before")
    @classmethod
    def _representable(cls, data: Any) -> Any:
        # A dead letter is the last resort: escape what cannot be encoded (an error
        # text quoting a lone surrogate) rather than refuse it.
        return _escaped(data)

    def original_bytes(self) -> bytes:
        return base64.b64decode(self.original_base64)

    def key(self) -> str | None:
        return self.event_id


class Priority(StrEnum):
    """Alert priority, P1 highest."""

    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"

    @property
    def rank(self) -> int:
        return int(self.value[1])


class AlertKind(StrEnum):
    message = "message"
    spike = "spike"
    sentiment_drop = "sentiment_drop"
    # The pipeline itself: lag, dead-letter growth, a stalled stage, model or store errors.
    health = "health"


class AlertStatus(StrEnum):
    open = "open"
    update = "update"
    resolved = "resolved"


class AlertSample(_Strict):
    event_id: str
    # The redacted text, clipped: safe to show to ops.
    quote: str
    channel: Channel
    received_at: EventTime
    customer_tier: str | None = None


class Alert(Event):
    """An alert for ops on ``feedback.alerts``. Key: ``kind:key``.

    One alert id lives from ``open`` through any ``update`` to ``resolved``;
    ``revision`` increases with every event about it, so (alert_id, revision)
    identifies a delivery and makes redeliveries easy to drop.
    """

    SCHEMA: ClassVar[str] = "feedback.alerts"

    alert_id: str
    revision: int = Field(ge=0)
    priority: Priority
    kind: AlertKind
    # What the alert is about, e.g. issue_type:logistics, theme:t12, channel:app, customer:c42.
    key: str
    status: AlertStatus
    title: str
    summary: str
    # Why: rule hits, statistics, folded related signals.
    reasons: list[str] = Field(default_factory=list)
    # Matching messages in the window (spike, sentiment) or since opening (message).
    count: int = Field(ge=0)
    # Expected count in the window (spike), baseline mean sentiment (sentiment_drop).
    baseline: float | None = None
    observed: float | None = None
    window_minutes: int | None = None
    p_value: float | None = None
    # Matches since the alert opened (spans windows and updates).
    total_count: int = Field(ge=0)
    samples: list[AlertSample] = Field(default_factory=list)
    issue_type: IssueType | None = None
    channel: Channel | None = None
    theme_id: str | None = None
    first_seen: AwareDatetime
    last_seen: AwareDatetime
    # Set once a person acknowledged the alert (``alerts ack``); carried by every later event about it.
    acknowledged_by: str | None = None
    acknowledged_at: AwareDatetime | None = None
    ack_note: str | None = None
    emitted_at: AwareDatetime = Field(default_factory=utcnow)

    def partition_key(self) -> str:
        return f"{self.kind.value}:{self.key}"


class DigestTheme(_Strict):
    theme_id: str
    label: str
    size: int = Field(ge=0)
    previous_size: int = Field(ge=0)
    status: str


class DigestAnnouncement(Event):
    """A weekly digest was written (``feedback.digests``). Key: the week."""

    SCHEMA: ClassVar[str] = "feedback.digests"

    week: str = Field(pattern=r"^\d{4}-W\d{2}$")
    html_path: str
    markdown_path: str
    feedback_count: int = Field(ge=0)
    theme_count: int = Field(ge=0)
    top_themes: list[DigestTheme] = Field(default_factory=list)
    emerging_themes: list[DigestTheme] = Field(default_factory=list)
    generated_at: AwareDatetime = Field(default_factory=utcnow)

    def key(self) -> str:
        return self.week


class Correction(Event):
    """A person's correction of a prediction on ``feedback.corrections`` (``feedback-miner label``). Key: the event id.

    The labels are what the message should have been given; ``predicted_*`` what the model said, when
    the event was in the store. A later correction of the same event supersedes an earlier one.
    """

    SCHEMA: ClassVar[str] = "feedback.corrections"

    correction_id: str = Field(default_factory=new_event_id)
    event_id: str = Field(min_length=1, max_length=128)
    # The (redacted) text the labels belong to: training reads it from here.
    text: str = Field(min_length=1)
    primary_issue: IssueType
    # Every label that applies, primary first.
    issue_types: list[IssueType] = Field(min_length=1)
    sentiment: SentimentLabel
    corrected_by: str = Field(min_length=1, max_length=200)
    corrected_at: AwareDatetime = Field(default_factory=utcnow)
    note: str | None = None
    predicted_primary_issue: IssueType | None = None
    predicted_issue_types: list[IssueType] | None = None
    predicted_sentiment: SentimentLabel | None = None
    model_version: str | None = None

    @model_validator(mode="after")
    def _primary_first(self) -> Correction:
        labels = list(dict.fromkeys([self.primary_issue, *self.issue_types]))
        if labels != list(self.issue_types):
            self.issue_types = labels
        return self

    def key(self) -> str:
        return self.event_id


ALL_EVENT_MODELS: tuple[type[Event], ...] = (RawFeedback, NormalizedFeedback, EnrichedFeedback, DeadLetter, Alert, DigestAnnouncement, Correction)
