"""The HTTP ingest endpoint on poison bodies (issue 17): always a 4xx naming the problem, never a 500.

Bad bodies never reach a producer, so most of these run on a recording stand-in;
the last test sends the accepted content types to the real broker.
"""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from consumers.kafka_io import make_producer, read_topic
from pipelines.ingest_api import create_app
from topics.schemas import RawFeedback
from topics.serde import decode
from tests.normalizer.ingest_factories import AUTH, event, with_ingest
from topics.settings import Settings

JSON = {**AUTH, "Content-Type": "application/json"}


class _Sent:
    def get(self, timeout=None):
        return None


class RecordingProducer:
    """Speaks the part of KafkaProducer the endpoint uses; keeps what was sent."""

    config = {"acks": "all"}

    def __init__(self):
        self.sent: list[dict] = []

    def send(self, topic, key=None, value=None, headers=None):
        self.sent.append({"topic": topic, "key": key, "value": value})
        return _Sent()

    def flush(self, timeout=None):
        return None


@pytest.fixture
def offline():
    producer = RecordingProducer()
    client = TestClient(create_app(with_ingest(Settings()), producer, lambda: None), raise_server_exceptions=False)
    return client, producer


def problem(response) -> dict:
    [error] = response.json()["detail"]
    return error


def post(client, body: bytes, content_type: str = "application/json"):
    return client.post("/v1/feedback", content=body, headers={**AUTH, "Content-Type": content_type})


def ascii_body(value) -> bytes:
    return json.dumps(value).encode("ascii")


def test_deep_json_gets_422_too_deep(offline):
    client, producer = offline
    levels = 100_000
    response = post(client, b"[" * levels + b"]" * levels)
    assert response.status_code == 422
    error = problem(response)
    assert error["reason"] == "too_deep" and error["type"] == "too_deep" and f"{levels} levels" in error["msg"]
    deep_object = ('{"metadata": ' + '{"a": ' * levels + "1" + "}" * levels + "}").encode()
    assert problem(post(client, deep_object))["reason"] == "too_deep"
    assert producer.sent == []


def test_depth_limit_counts_per_event_in_a_batch(offline):
    client, producer = offline
    metadata = {"a": {"b": {"c": 1}}}
    for k in range(28):
        metadata = {"k": metadata}  # 31 dicts: the event's deepest level is 32, its limit
    single = post(client, ascii_body(event(metadata=metadata)))
    batch = post(client, ascii_body([event("b1", metadata=metadata)]))
    assert (single.status_code, batch.status_code) == (202, 202)
    too_deep = post(client, ascii_body([event("b2", metadata={"x": metadata})]))
    assert too_deep.status_code == 422 and problem(too_deep)["reason"] == "too_deep"
    assert "counts as one level" in problem(too_deep)["msg"]
    assert len(producer.sent) == 2


@pytest.mark.parametrize("literal", ["9" * 5000, "-" + "1" * 4400, "1" * 101, "1e999"])
def test_huge_numbers_get_422_number_too_large(offline, literal):
    client, producer = offline
    body = ascii_body(event()).replace(b'"rating": 1', b'"rating": ' + literal.encode())
    response = post(client, body)
    assert response.status_code == 422 and problem(response)["reason"] == "number_too_large"
    assert producer.sent == []


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(offline, literal):
    client, _ = offline
    response = post(client, ascii_body(event(metadata={"x": 0})).replace(b'"x": 0', b'"x": ' + literal.encode()))
    assert response.status_code == 422
    error = problem(response)
    assert error["reason"] == "not_json" and error["type"] == "json_invalid" and "body is not JSON" in error["msg"]


@pytest.mark.parametrize("channel", [{}, [], ["app"], {"email": 1}])
def test_channel_as_object_or_list_gets_422_naming_channel(offline, channel):
    client, _ = offline
    response = post(client, ascii_body(event(channel=channel)))
    assert response.status_code == 422
    first = response.json()["detail"][0]
    assert first["field"] == "channel" and first["reason"] == "schema_invalid"


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"payload": {"text": "好", "device": "\ud800"}}, "payload.device"),
        ({"payload": {"text": "\udfff"}}, "payload.text"),
        ({"channel": "social", "payload": {"text": "好", "author": "\ud83d"}}, "payload.author"),
        ({"customer": {"id": "c1", "tier": "\udc00"}}, "customer.tier"),
        ({"metadata": {"ua": ["ok", "\ud800"]}}, "metadata.ua.1"),
        ({"metadata": {"\ud800": 1}}, "metadata.\\ud800"),
        ({"\ud800": 1}, "\\ud800"),
    ],
)
def test_lone_surrogate_escapes_get_422_naming_the_field(offline, overrides, field):
    client, producer = offline
    body = ascii_body(event(**overrides))
    assert b"\\ud8" in body or b"\\udc" in body or b"\\udf" in body  # sent as the JSON escape
    response = post(client, body)
    assert response.status_code == 422
    error = problem(response)
    assert error["field"] == field and error["reason"] == "schema_invalid"
    assert "\\u" in error["msg"] and "\ud800" not in response.text
    batch = post(client, ascii_body([event("ok"), event("bad", **overrides)]))
    assert batch.status_code == 422 and problem(batch)["field"] == f"1.{field}"
    assert producer.sent == []


def test_times_out_of_range_get_422_naming_received_at(offline):
    client, _ = offline
    for received_at in ["0001-01-01T00:00:00+08:00", "9999-12-31T23:59:59-05:00"]:
        response = post(client, ascii_body(event(received_at=received_at)))
        assert response.status_code == 422
        error = problem(response)
        assert error["field"] == "received_at" and "year out of range" in error["msg"]


def test_bodies_that_are_not_utf8_get_422(offline):
    client, _ = offline
    response = post(client, json.dumps(event(), ensure_ascii=False).encode("gb18030"))
    assert response.status_code == 422 and problem(response)["reason"] == "not_utf8"
    assert post(client, json.dumps(event(), ensure_ascii=False).encode("utf-16")).status_code == 422


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml", "application/json; charset=gbk", "text/json"],
)
def test_wrong_content_types_get_415(offline, content_type):
    client, producer = offline
    headers = {**AUTH, **({"Content-Type": content_type} if content_type else {})}
    response = client.post("/v1/feedback", content=ascii_body(event()), headers=headers)
    assert response.status_code == 415
    assert "not supported" in response.json()["detail"] or "no Content-Type" in response.json()["detail"]
    assert producer.sent == []


def test_form_bodies_get_415(offline):
    client, _ = offline
    assert client.post("/v1/feedback", data={"event_id": "x", "channel": "app"}, headers=AUTH).status_code == 415
    assert client.post("/v1/feedback", files={"f": ("e.json", ascii_body(event()), "application/json")}, headers=AUTH).status_code == 415


def test_authentication_comes_before_the_content_type(offline):
    client, _ = offline
    assert client.post("/v1/feedback", content=b"x", headers={"Content-Type": "text/plain"}).status_code == 401


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON;charset=\"UTF-8\"", "application/feedback+json"])
def test_json_content_types_are_accepted(offline, content_type):
    client, producer = offline
    response = post(client, ascii_body(event()), content_type)
    assert response.status_code == 202 and response.json() == {"accepted": 1, "event_ids": ["a"]}
    assert decode(RawFeedback, producer.sent[0]["value"]).event_id == "a"


def test_a_utf8_bom_is_tolerated(offline):
    client, _ = offline
    assert post(client, b"\xef\xbb\xbf" + json.dumps(event(), ensure_ascii=False).encode()).status_code == 202


def test_openapi_lists_415(offline):
    client, _ = offline
    responses = client.get("/openapi.json").json()["paths"]["/v1/feedback"]["post"]["responses"]
    assert {"202", "401", "413", "415", "422", "503"} <= set(responses)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(st.characters(), max_size=6),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(st.characters(), max_size=5), children, max_size=3),
    max_leaves=20,
)


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(["channel", "payload", "metadata", "customer", "received_at", "event_id", "source", None]), value=json_values, batch=st.booleans())
def test_no_body_gets_a_500(offline, field, value, batch):
    client, _ = offline
    body = event()
    if field is None:
        body = value
    else:
        body[field] = value
    try:
        raw = json.dumps([body] if batch else body, allow_nan=True).encode("ascii")
    except (ValueError, RecursionError):
        return
    response = post(client, raw)
    assert response.status_code in (202, 413, 422), response.text
    response.json()


@pytest.mark.broker
def test_accepted_content_types_reach_the_raw_topic(kafka_settings):
    settings = with_ingest(kafka_settings)
    producer = make_producer(settings)
    try:
        client = TestClient(create_app(settings, producer, lambda: None))
        assert post(client, ascii_body(event("plain")), "application/json; charset=utf-8").status_code == 202
        assert post(client, ascii_body([event("suffix", customer={"id": "c2"})]), "application/vnd.feedback+json").status_code == 202
        assert post(client, ascii_body(event("refused", metadata={"x": "\ud800"}))).status_code == 422
        on_topic = {decode(RawFeedback, r.value).event_id for r in read_topic(settings, "feedback.raw")}
        assert on_topic == {"plain", "suffix"}
    finally:
        producer.close()


def test_an_unknown_field_names_the_fields_the_channel_takes(offline):
    """An integrator who sends the app channel's `text` to the e-mail channel learns what it takes instead."""
    client, producer = offline
    response = post(client, ascii_body({**event("mail-1"), "channel": "email", "payload": {"text": "refund?"}}))
    assert response.status_code == 422 and not producer.sent
    error = problem(response)
    assert error["field"] == "payload.email.text" and error["type"] == "extra_forbidden"
    assert error["msg"] == "Extra inputs are not permitted (fields there: subject, body, mime_base64, sender)"


def test_a_gbk_body_and_a_bare_customer_id_say_what_to_send_instead(offline):
    """Two mistakes of integrators with older Chinese systems: text encoded as GBK, the customer sent as its id."""
    client, producer = offline
    gbk = post(client, json.dumps(event("gbk-1", payload={"text": "退款一直没到账"}), ensure_ascii=False).encode("gbk"))
    assert gbk.status_code == 422 and problem(gbk)["reason"] == "not_utf8"
    assert problem(gbk)["msg"].endswith("(it reads as GBK/GB18030: send UTF-8)")
    bare = post(client, ascii_body({**event("bare-1"), "customer": "c-1"}))
    assert bare.status_code == 422 and problem(bare)["field"] == "customer"
    assert problem(bare)["msg"] == "Input should be an object with the fields id, tier"
    assert not producer.sent
