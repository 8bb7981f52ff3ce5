"""Poison input (issue 17): every bad message gets a precise reason, and what validates always encodes."""

from __future__ import annotations

import json
import string

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from pydantic import ValidationError

from consumers.normalizer import NormalizerStage
from consumers.stage import InMessage, process_batch
from topics.schemas import MAX_JSON_DEPTH, DeadLetter, DeadLetterReason, NormalizedFeedback, RawFeedback
from topics.serde import DecodeError, decode, encode, json_depth, parse_json
from tests.backbone.factories import raw_event_bytes, raw_event_dict


def ascii_json(**overrides) -> bytes:
    """The event as JSON with \\u escapes: lone surrogates travel as the escapes integrators send."""
    return json.dumps(raw_event_dict(**overrides)).encode("ascii")


def nested(levels: int, leaf: object = 1) -> object:
    value = leaf
    for _ in range(levels):
        value = {"k": value}
    return value


def reason_of(value: bytes, **kwargs) -> tuple[str, str]:
    with pytest.raises(DecodeError) as info:
        decode(RawFeedback, value, **kwargs)
    message = str(info.value)
    message.encode("utf-8")  # the error text itself is always encodable
    return info.value.reason, message


# --- depth -----------------------------------------------------------------------


@pytest.mark.parametrize("levels", [256, 450, 100_000])
def test_deep_json_is_too_deep_at_parse_time(levels):
    deep_array = b"[" * levels + b"]" * levels
    assert reason_of(deep_array) == ("too_deep", f"JSON nests {levels} levels deep, the limit is {MAX_JSON_DEPTH}")
    deep_metadata = ('{"metadata": ' + '{"a": ' * levels + "1" + "}" * levels + "}").encode()
    assert reason_of(deep_metadata)[0] == "too_deep"


def test_depth_limit_is_exact_and_configurable():
    # The event object is level 1, metadata (the outermost of these dicts) level 2: 31 dicts fit the default 32.
    assert json_depth(ascii_json(metadata=nested(31)).decode()) == 32
    assert decode(RawFeedback, ascii_json(metadata=nested(31))).metadata == nested(31)
    reason, message = reason_of(ascii_json(metadata=nested(32)))
    assert reason == "too_deep" and "33 levels" in message
    assert decode(RawFeedback, ascii_json(metadata=nested(32)), max_depth=33).metadata == nested(32)
    assert reason_of(ascii_json(metadata=nested(3)), max_depth=3)[0] == "too_deep"


def test_brackets_inside_strings_do_not_count():
    text = json.dumps({"a": "[[[[{{{{" * 50, "b": ['\\"[[[', "]]]}}}"], "c": [[1]]})
    assert json_depth(text) == 3
    event = raw_event_dict(payload={"text": "【【【" + "[" * 200 + "{" * 200 + '\\"'})
    assert decode(RawFeedback, json.dumps(event, ensure_ascii=False).encode()).payload.text.endswith('{\\"')


def test_real_events_nest_a_few_levels():
    from pathlib import Path

    samples = Path(__file__).resolve().parents[2] / "pipelines" / "samples" / "feedback.jsonl"
    depths = [json_depth(line) for line in samples.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert depths and max(depths) <= 3 < MAX_JSON_DEPTH


# --- numbers ---------------------------------------------------------------------


@pytest.mark.parametrize("literal, digits", [("9" * 5000, 5000), ("-" + "1" * 4301, 4301), ("1" * 101, 101)])
def test_huge_integers_are_number_too_large(literal, digits):
    value = json.dumps(raw_event_dict(metadata={"n": 0})).replace('"n": 0', f'"n": {literal}').encode()
    assert reason_of(value) == ("number_too_large", f"an integer has {digits} digits, the limit is 100")
    rating = ascii_json().replace(b'"rating": 1', b'"rating": ' + literal.encode())
    assert reason_of(rating)[0] == "number_too_large"


def test_integers_up_to_the_limit_pass():
    big = int("9" * 100)
    assert decode(RawFeedback, ascii_json(metadata={"n": big, "m": -big})).metadata == {"n": big, "m": -big}
    assert reason_of(ascii_json(metadata={"n": 10**5}), max_int_digits=5)[0] == "number_too_large"


@pytest.mark.parametrize("literal, reason", [("1e999", "number_too_large"), ("-1e400", "number_too_large"), ("NaN", "not_json"), ("Infinity", "not_json"), ("-Infinity", "not_json")])
def test_non_finite_numbers_are_refused(literal, reason):
    value = ascii_json(metadata={"x": 0}).replace(b'"x": 0', b'"x": ' + literal.encode())
    got, message = reason_of(value)
    assert got == reason and literal.lstrip("-") in message


# --- lone surrogates ----------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"payload": {"text": "好", "device": "\ud800"}}, "payload.device"),
        ({"payload": {"text": "好", "os": "iOS\udfff"}}, "payload.os"),
        ({"channel": "social", "payload": {"text": "好", "author": "\ud83d"}}, "payload.author"),
        ({"channel": "social", "payload": {"text": "好", "url": "x\udc00y"}}, "payload.url"),
        ({"customer": {"id": "c\ud800"}}, "customer.id"),
        ({"source": "\ud800"}, "source"),
        ({"event_id": "\ud800"}, "event_id"),
        ({"metadata": {"device": "\ud800"}}, "metadata.device"),
        ({"metadata": {"a": [{"b": ["ok", "\ud800"]}]}}, "metadata.a.0.b.1"),
    ],
)
def test_lone_surrogates_are_schema_invalid_naming_the_field(overrides, field):
    reason, message = reason_of(ascii_json(**overrides))
    assert reason == "schema_invalid"
    assert message.startswith(f"{field}: lone surrogate \\u")
    assert "is not valid text" in message


def test_lone_surrogates_in_keys_are_named_escaped():
    reason, message = reason_of(ascii_json(metadata={"a": {"\ud800x": 1}}))
    assert reason == "schema_invalid" and message == "metadata.a.\\ud800x: key has lone surrogate \\ud800, which is not valid text"
    reason, message = reason_of(ascii_json(**{"\udfffextra": 1}))
    assert reason == "schema_invalid" and "\\udfffextra" in message


def test_surrogate_pairs_and_escaped_backslashes_are_fine():
    event = decode(RawFeedback, ascii_json(payload={"text": "好评 😀"}, metadata={"path": "C:\\ud800"}))
    assert event.payload.text == "好评 😀" and event.metadata == {"path": "C:\\ud800"}


def test_direct_validation_refuses_what_cannot_be_encoded():
    """Not only decode: any validation of an event (the ingest endpoint, a stage building events)."""
    with pytest.raises(ValidationError) as info:
        RawFeedback.model_validate(raw_event_dict(metadata={"n": 10**200, "x": float("inf"), "s": "\ud800", "d": nested(40)}))
    kinds = {(".".join(map(str, e["loc"]))[:12], e["type"]) for e in info.value.errors()}
    assert {("metadata.n", "number_too_large"), ("metadata.x", "number_not_finite"), ("metadata.s", "lone_surrogate")} <= kinds
    assert any(t == "too_deep" for _, t in kinds)
    normalized = {k: v for k, v in raw_event_dict().items() if k != "payload"}
    with pytest.raises(ValidationError, match="lone surrogate"):
        NormalizedFeedback(**normalized, text="\ud800")


def test_dead_letters_escape_surrogates_instead_of_refusing():
    entry = DeadLetter(stage="s", reason="processing_error", error="KeyError: '\ud800'", source_topic="t", original_base64="", headers={"h\udc00": "v"})
    assert entry.error == "KeyError: '\\ud800'" and entry.headers == {"h\\udc00": "v"}
    assert decode(DeadLetter, encode(entry)) == entry


# --- dates and channel ----------------------------------------------------------------


@pytest.mark.parametrize("received_at", ["0001-01-01T00:00:00+08:00", "9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+00:00", "9999-12-31T23:59:59+00:00"])
def test_times_that_cannot_be_converted_or_shifted_are_schema_invalid(received_at):
    reason, message = reason_of(ascii_json(received_at=received_at))
    assert reason == "schema_invalid"
    assert message == f"received_at: year out of range: {received_at} must lie between years 2 and 9998 in UTC"


def test_far_but_representable_times_pass():
    for received_at in ["1970-01-01T00:00:00+00:00", "0002-01-01T08:00:00+08:00", "9998-12-31T23:59:59+00:00"]:
        assert decode(RawFeedback, ascii_json(received_at=received_at)).received_at.year in (1970, 2, 9998)


@pytest.mark.parametrize("channel", [{}, [], ["app"], {"app": 1}])
def test_channel_as_object_or_list_is_schema_invalid(channel):
    reason, message = reason_of(ascii_json(channel=channel))
    assert reason == "schema_invalid" and message.startswith("channel: Input should be 'email', 'social' or 'app'")


@pytest.mark.parametrize(("overrides", "message"), [
    # The e-mail channel has no `text`: what it takes instead is named.
    ({"channel": "email", "payload": {"text": "退款一直没到账"}},
     "payload.email.text: Extra inputs are not permitted (fields there: subject, body, mime_base64, sender)"),
    ({"payload": {"text": "闪退", "stars": 1}},
     "payload.app.stars: Extra inputs are not permitted (fields there: text, rating, app_version, os, device, store)"),
    ({"customer": {"id": "c-1", "name": "张三"}}, "customer.name: Extra inputs are not permitted (fields there: id, tier)"),
    ({"priority": "high"}, "priority: Extra inputs are not permitted (fields there: event_id, channel, source, "
                           "received_at, customer, payload, metadata)"),
])
def test_an_unknown_field_is_named_with_the_fields_accepted_there(overrides, message):
    reason, text = reason_of(raw_event_bytes(**overrides))
    assert (reason, text) == ("schema_invalid", message)



@pytest.mark.parametrize(("value", "reason", "message"), [
    # A local time without its offset: the format to send instead.
    (lambda: raw_event_bytes(received_at="2026-12-08 07:00:00"), "schema_invalid",
     "received_at: Input should have timezone info (add the UTC offset, e.g. 2026-12-08T07:00:00+08:00)"),
    # A misspelt channel is one error: the payload's kind follows from the channel, so nothing more is said about it.
    (lambda: raw_event_bytes(channel="wechat"), "schema_invalid", "channel: Input should be 'email', 'social' or 'app'"),
    # The customer as a bare id: the object's fields, not pydantic's "instance of Customer".
    (lambda: raw_event_bytes(customer="c-1"), "schema_invalid", "customer: Input should be an object with the fields id, tier"),
    # A JSON array of events in one message.
    (lambda: json.dumps([raw_event_dict(), raw_event_dict()]).encode(), "not_object",
     "value is JSON list, expected an object (one event per message, not a list of events)"),
])
def test_common_integration_mistakes_say_what_to_send_instead(value, reason, message):
    assert reason_of(value()) == (reason, message)


def test_chinese_text_in_gbk_is_named_as_such():
    reason, message = reason_of(json.dumps(raw_event_dict(payload={"text": "退款一直没到账"}), ensure_ascii=False).encode("gbk"))
    assert reason == "not_utf8" and message.endswith("(it reads as GBK/GB18030: send UTF-8)")
    reason, message = reason_of(b'{"text": "\xff\xff"}')  # 0xFF starts no character in GB18030 either
    assert reason == "not_utf8" and "GBK" not in message  # bytes that no Chinese encoding reads get no guess


# --- the stage, and the round trip ---------------------------------------------------------


def test_the_normalizer_dead_letters_each_finding_with_its_reason():
    cases = {
        "too_deep/metadata": ('{"metadata": ' + "[" * 300 + "]" * 300 + "}").encode(),
        "too_deep/array": b"[" * 100_000 + b"]" * 100_000,
        "number_too_large": ascii_json().replace(b'"rating": 1', b'"rating": ' + b"7" * 5000),
        "schema_invalid/date": ascii_json(received_at="0001-01-01T00:00:00+08:00"),
        "schema_invalid/channel": ascii_json(channel={}),
        "schema_invalid/surrogate": ascii_json(payload={"text": "好", "store": "\ud800"}),
        "schema_invalid/metadata-surrogate": ascii_json(metadata={"k": ["\udbff"]}),
    }
    messages = [InMessage("feedback.raw", 0, offset, b"c-1", value) for offset, value in enumerate([*cases.values(), ascii_json(event_id="good")])]
    result = process_batch(NormalizerStage(), messages)
    assert [out.event.event_id for out in result.outputs] == ["good"]
    reasons = [d.reason.value for d in result.dead_letters]
    assert reasons == [label.split("/")[0] for label in cases]
    assert DeadLetterReason.processing_error not in reasons
    for out in [*result.outputs, *result.dead_letters]:
        encoded = encode(out.event if hasattr(out, "event") else out)
        encoded.decode("utf-8")


def test_parse_json_reasons():
    assert parse_json('{"a": [1, 2.5, "x"]}') == {"a": [1, 2.5, "x"]}
    for text, reason in [("{", "not_json"), ("\ufeff{}", "not_json"), ("[" * 40 + "]" * 40, "too_deep"), ("1" * 200, "number_too_large")]:
        with pytest.raises(DecodeError) as info:
            parse_json(text)
        assert info.value.reason == reason


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(alphabet=st.characters(), max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(st.characters(), max_size=6), children, max_size=4),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    field=st.sampled_from(["metadata", "payload", "customer", "channel", "event_id", "received_at", "source"]),
    value=json_values,
    text=st.text(alphabet=st.characters(), max_size=12),
)
def test_whatever_decode_accepts_encodes(field, value, text):
    """The round trip never raises: decode gives an event (that encodes and decodes back) or a DecodeError."""
    event = raw_event_dict()
    if field == "payload":
        event["payload"] = {"text": text or "x", "device": text, "store": value if isinstance(value, str) else text}
    elif field == "metadata":
        event["metadata"] = {text: value}
    elif field == "customer":
        event["customer"] = {"id": text, "tier": value}
    else:
        event[field] = value
    try:
        raw = json.dumps(event, ensure_ascii=True, allow_nan=True).encode("ascii")
    except (ValueError, RecursionError):
        return
    try:
        decoded = decode(RawFeedback, raw)
    except DecodeError as exc:
        assert exc.reason in set(DeadLetterReason)
        str(exc).encode("utf-8")
        return
    assert decode(RawFeedback, encode(decoded)) == decoded


def test_whatever_decode_accepts_encodes_for_odd_strings():
    odd = ["\ud800", "\udfff", "\ud83d\ude00", "\x00", "\u2028", "\\u", string.printable]
    for value in odd:
        raw = ascii_json(metadata={value: value}, payload={"text": value or "x", "device": value})
        try:
            decoded = decode(RawFeedback, raw)
        except DecodeError as exc:
            assert exc.reason == "schema_invalid"
            continue
        assert decode(RawFeedback, encode(decoded)) == decoded


@pytest.mark.broker
def test_poison_messages_on_the_real_broker_are_dead_lettered_with_their_reasons(kafka_settings):
    """The fuzz findings as raw bytes on feedback.raw: the normalizer runtime dead-letters each and goes on."""
    from consumers.kafka_io import make_producer, read_topic
    from consumers.runtime import StreamRuntime

    cases = {
        "too_deep": ('{"metadata": ' + '{"a": ' * 400 + "1" + "}" * 400 + "}").encode(),
        "number_too_large": ascii_json(event_id="n").replace(b'"rating": 1', b'"rating": ' + b"9" * 4400),
        "schema_invalid/surrogate": ascii_json(event_id="s", payload={"text": "好", "device": "\ud800"}, metadata={"\udc00": "\ud800"}),
        "schema_invalid/date": ascii_json(event_id="d", received_at="0001-01-01T00:00:00+08:00"),
        "schema_invalid/channel": ascii_json(event_id="c", channel=["app"]),
    }
    producer = make_producer(kafka_settings)
    for value in [*cases.values(), ascii_json(event_id="good")]:
        producer.send(kafka_settings.topic("feedback.raw"), key=b"c-1", value=value).get(timeout=10)
    producer.close()

    runtime = StreamRuntime(NormalizerStage(max_event_bytes=kafka_settings.runtime.max_event_bytes), kafka_settings)
    stats = runtime.run(max_messages=len(cases) + 1, idle_exit_s=10)
    assert (stats.produced, stats.dead_lettered) == (1, len(cases))
    dead = {d.original_bytes(): d for d in (decode(DeadLetter, r.value) for r in read_topic(kafka_settings, "feedback.deadletter"))}
    for label, value in cases.items():
        assert dead[value].reason.value == label.split("/")[0], dead[value].error
    assert "payload.device: lone surrogate \\ud800" in dead[cases["schema_invalid/surrogate"]].error
    assert "received_at: year out of range" in dead[cases["schema_invalid/date"]].error
