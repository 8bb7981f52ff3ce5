"""Versioned event schemas: the contract between integrations and stages.

Each event model carries ``SCHEMA`` (a name) and ``VERSION``; both travel in
Kafka headers. Adding an optional field is a compatible change; anything else
bumps ``VERSION`` and the JSON Schema files exported for integrators.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator


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


class _Strict(BaseModel):
    # Unknown fields are rejected so that a typo never silently drops data.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class Event(_Strict):
    """Base of every event that travels on a topic."""

    SCHEMA: ClassVar[str]
    VERSION: ClassVar[int] = 1


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
    received_at: AwareDatetime
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
            if channel in _PAYLOAD_BY_CHANNEL and "kind" not in payload:
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
    received_at: AwareDatetime
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


class EnrichedFeedback(NormalizedFeedback):
    """Classified feedback on ``feedback.enriched`` (embeddings live in the store)."""

    SCHEMA: ClassVar[str] = "feedback.enriched"

    primary_issue: IssueType
    # Every label that applies (primary first).
    issue_types: list[IssueType]
    # A probability per label of the taxonomy.
    issue_scores: list[IssueTypeScore]
    sentiment: Sentiment
    theme_id: str | None = None
    model_version: str
    enriched_at: AwareDatetime = Field(default_factory=utcnow)


class DeadLetterReason(StrEnum):
    not_utf8 = "not_utf8"
    not_json = "not_json"
    not_object = "not_object"
    schema_invalid = "schema_invalid"
    too_large = "too_large"
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


class AlertStatus(StrEnum):
    open = "open"
    update = "update"
    resolved = "resolved"


class AlertSample(_Strict):
    event_id: str
    # The redacted text, clipped: safe to show to ops.
    quote: str
    channel: Channel
    received_at: AwareDatetime
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


ALL_EVENT_MODELS: tuple[type[Event], ...] = (RawFeedback, NormalizedFeedback, EnrichedFeedback, DeadLetter, Alert, DigestAnnouncement)
