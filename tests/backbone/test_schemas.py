import base64
import json

import pytest
from pydantic import ValidationError

from topics.schemas import (
    ALL_EVENT_MODELS,
    DeadLetter,
    EmailPayload,
    EnrichedFeedback,
    IssueType,
    NormalizedFeedback,
    RawFeedback,
)
from topics.serde import DecodeError, decode, encode, headers_dict, make_headers
from tests.backbone.factories import raw_event_bytes, raw_event_dict


def test_raw_event_takes_payload_kind_from_channel():
    event = RawFeedback.model_validate(raw_event_dict())
    assert event.payload.kind == "app"
    assert event.payload.rating == 1
    assert event.key() == "c-1"


def test_each_channel_has_its_payload():
    email = RawFeedback.model_validate(raw_event_dict(channel="email", payload={"subject": "退款", "body": "还没到账"}))
    assert isinstance(email.payload, EmailPayload)
    social = RawFeedback.model_validate(raw_event_dict(channel="social", payload={"text": "#话题# 太慢了[怒]"}))
    assert social.payload.kind == "social"


def test_payload_must_match_channel():
    with pytest.raises(ValidationError, match="does not match channel"):
        RawFeedback.model_validate(raw_event_dict(channel="email", payload={"kind": "app", "text": "x"}))


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"received_at": "2026-11-16T09:00:00"}, "received_at"),  # naive time
        ({"customer": {"id": ""}}, "customer.id"),
        ({"channel": "fax"}, "channel"),
        ({"payload": {"text": "好", "rating": 6}}, "rating"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
def test_invalid_raw_events_name_the_field(overrides, field):
    with pytest.raises(DecodeError) as info:
        decode(RawFeedback, raw_event_bytes(**overrides))
    assert info.value.reason == "schema_invalid"
    assert field in str(info.value)


def test_missing_field_is_named():
    data = raw_event_dict()
    del data["customer"]
    with pytest.raises(DecodeError, match="customer: Field required"):
        decode(RawFeedback, json.dumps(data).encode())


def test_email_needs_content_and_valid_base64():
    with pytest.raises(ValidationError, match="needs body, subject or mime_base64"):
        EmailPayload()
    with pytest.raises(ValidationError, match="not valid base64"):
        EmailPayload(mime_base64="***")
    assert EmailPayload(mime_base64=base64.b64encode(b"Subject: x\r\n\r\nhi").decode()).mime_base64


@pytest.mark.parametrize(
    "value, reason",
    [
        (b"{not json", "not_json"),
        ("{}".encode("utf-16"), "not_utf8"),
        (b"[1, 2]", "not_object"),
        (None, "not_json"),
    ],
)
def test_decode_reasons(value, reason):
    with pytest.raises(DecodeError) as info:
        decode(RawFeedback, value)
    assert info.value.reason == reason


def test_size_limit_and_version_header():
    value = raw_event_bytes()
    with pytest.raises(DecodeError) as info:
        decode(RawFeedback, value, max_bytes=len(value) - 1)
    assert info.value.reason == "too_large"
    with pytest.raises(DecodeError) as info:
        decode(RawFeedback, value, headers=[("schema_version", b"99")])
    assert info.value.reason == "unsupported_version"
    assert decode(RawFeedback, value, max_bytes=len(value), headers=[("schema_version", b"1")]).event_id == "e-1"


def test_round_trip_keeps_chinese_and_timezone():
    event = RawFeedback.model_validate(raw_event_dict())
    data = encode(event)
    assert "外卖".encode() in data  # UTF-8, not \u escapes
    again = decode(RawFeedback, data)
    assert again == event
    assert again.received_at.utcoffset().total_seconds() == 8 * 3600


def test_headers_carry_schema_version_and_trace():
    event = RawFeedback.model_validate(raw_event_dict())
    headers = headers_dict(make_headers(event, trace_id="t-1"))
    assert headers == {"schema": "feedback.raw", "schema_version": "1", "trace_id": "t-1", "content_type": "application/json"}
    assert len(headers_dict(make_headers(event))["trace_id"]) == 32


def test_enriched_extends_normalized():
    normalized = NormalizedFeedback(**{k: v for k, v in raw_event_dict().items() if k != "payload"}, text="太慢")
    enriched = EnrichedFeedback(
        **normalized.model_dump(),
        primary_issue=IssueType.logistics,
        issue_types=[IssueType.logistics],
        issue_scores=[{"label": "logistics", "probability": 0.9}],
        sentiment={"label": "negative", "score": -0.8},
        model_version="test",
    )
    assert decode(EnrichedFeedback, encode(enriched)) == enriched
    with pytest.raises(ValidationError):
        EnrichedFeedback(**{**enriched.model_dump(), "sentiment": {"label": "negative", "score": -1.5}})


def test_enriched_v2_carries_aspect_sentiments_and_still_reads_v1_events():
    normalized = NormalizedFeedback(**{k: v for k, v in raw_event_dict().items() if k != "payload"}, text="物流很快但是质量很差")
    v2 = EnrichedFeedback(
        **normalized.model_dump(),
        primary_issue=IssueType.product_quality,
        issue_types=[IssueType.product_quality, IssueType.logistics],
        issue_scores=[{"label": "product_quality", "probability": 0.9}, {"label": "logistics", "probability": 0.7}],
        sentiment={"label": "negative", "score": -0.6},
        aspect_sentiments=[{"issue_type": "product_quality", "sentiment": "negative"},
                           {"issue_type": "logistics", "sentiment": "positive"}],
        model_version="test",
    )
    assert headers_dict(make_headers(v2))["schema_version"] == "2"
    assert decode(EnrichedFeedback, encode(v2), headers=make_headers(v2)) == v2
    # A v1 event (before aspects existed) is still read, with no aspect sentiments.
    v1 = json.loads(encode(v2))
    del v1["aspect_sentiments"]
    old = decode(EnrichedFeedback, json.dumps(v1).encode(), headers=[("schema_version", b"1")])
    assert old.aspect_sentiments == [] and old.issue_types == v2.issue_types
    with pytest.raises(DecodeError) as info:
        decode(EnrichedFeedback, encode(v2), headers=[("schema_version", b"3")])
    assert info.value.reason == "unsupported_version"
    with pytest.raises(ValidationError):
        EnrichedFeedback(**{**v2.model_dump(), "aspect_sentiments": [{"issue_type": "logistics", "sentiment": "great"}]})


def test_dead_letter_keeps_original_bytes():
    original = "原始字节".encode("gbk")
    entry = DeadLetter(
        stage="normalizer", reason="not_utf8", error="x", source_topic="feedback.raw",
        original_base64=base64.b64encode(original).decode(),
    )
    assert decode(DeadLetter, encode(entry)).original_bytes() == original


def test_committed_json_schemas_match_the_models(tmp_path):
    from pathlib import Path

    from topics.jsonschema_export import schema_filename, write_json_schemas

    committed = Path(__file__).resolve().parents[2] / "topics" / "jsonschema"
    for path in write_json_schemas(tmp_path):
        assert (committed / path.name).read_text(encoding="utf-8") == path.read_text(encoding="utf-8"), (
            f"{path.name} is stale: run 'feedback-miner topics schemas'"
        )
    assert {schema_filename(m) for m in ALL_EVENT_MODELS} <= {p.name for p in committed.iterdir()}
