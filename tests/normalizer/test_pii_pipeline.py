"""What leaves the normalizer: every free-text field of every channel redacted, contact customer ids pseudonymised."""

from __future__ import annotations

import json
from typing import Any

from consumers.normalizer import NormalizerStage
from consumers.normalizer.pii import pseudonymise
from consumers.normalizer.pipeline import normalize
from consumers.stage import InMessage, process_batch
from topics.schemas import RawFeedback
from topics.serde import encode
from topics.settings import ChannelSettings

SETTINGS = ChannelSettings(pseudonym_key="test-key")
SECRETS = ("13812345678", "13912345678", "13712345678", "li.wei@example.com", "zhang@example.com", "6552 9988", "0755")


def raw(event_id: str, channel: str, payload: dict[str, Any], customer: str = "c1", **extra: Any) -> dict[str, Any]:
    return {
        "event_id": event_id, "channel": channel, "source": "test", "received_at": "2026-11-16T09:00:00+08:00",
        "customer": {"id": customer}, "payload": payload, **extra,
    }


def run(*events: dict[str, Any]):
    stage = NormalizerStage(max_event_bytes=256 * 1024, settings=SETTINGS)
    messages = [InMessage("feedback.raw", 0, i, None, json.dumps(e, ensure_ascii=False).encode()) for i, e in enumerate(events)]
    return process_batch(stage, messages)


def test_free_text_in_every_field_of_every_channel_is_redacted() -> None:
    result = run(
        raw("a1", "app", {"text": "闪退", "rating": 1, "app_version": "8.4.0", "os": "Android 15",
                          "device": "张三的手机 13812345678", "store": "客服 li.wei@example.com"}),
        raw("s1", "social", {
            "text": "又超时了 #电话13912345678# //@用户13712345678:同样遇到 //@zhang@example.com:外卖太慢",
            "platform": "weibo", "post_id": "4951234567890128",
            "url": "https://weibo.com/u/13812345678?from=li.wei@example.com"}),
        raw("e1", "email", {"subject": "座机 0755-6552 9988", "body": "请回电"},
            metadata={"13812345678": {"备注": "座机(0755)6552 9988"}, "list": ["li.wei@example.com"]}),
    )
    assert not result.dead_letters
    out = {o.event.event_id: o.event for o in result.outputs}
    app = out["a1"]
    assert app.signals["device"] == "张三的手机 [手机号]" and app.signals["store"] == "客服 [邮箱]"
    assert app.signals["app_version"] == "8.4.0" and app.signals["os"] == "Android 15"
    assert app.pii == {"phone": 1, "email": 1}
    social = out["s1"]
    assert social.signals["post_id"] == "4951234567890128"  # a post id that happens to pass Luhn stays
    assert social.signals["post_url"] == "https://weibo.com/u/[手机号]?from=[邮箱]"
    assert social.signals["repost_chain"] == ["用户[手机号]", "[邮箱]"]
    assert social.signals["repost_of"]["author"] == "[邮箱]"
    assert social.signals["tags"] == ["电话[手机号]"]
    mail = out["e1"]
    assert mail.subject == "座机 [座机]"
    assert mail.metadata == {"[手机号]": {"备注": "座机[座机]"}, "list": ["[邮箱]"]}
    produced = b"".join(encode(o.event) for o in result.outputs).decode()
    for secret in SECRETS:
        assert secret not in produced


def test_contact_customer_ids_become_the_same_pseudonym_and_message_key() -> None:
    pseudonym = pseudonymise("zhang@example.com", "test-key")
    result = run(
        raw("m1", "email", {"subject": "退款", "body": "还没到账"}, customer="zhang@example.com"),
        raw("m2", "email", {"subject": "退款", "body": "还是没到账"}, customer="Zhang@Example.com"),
        {**raw("p1", "app", {"text": "闪退"}), "customer": {"id": "+86 138 1234 5678", "tier": "vip"}},
        raw("c1", "app", {"text": "闪退了"}, customer="c1001"),
    )
    out = {o.event.event_id: o for o in result.outputs}
    assert out["m1"].event.customer.id == out["m2"].event.customer.id == pseudonym
    assert out["m1"].key == out["m2"].key == pseudonym  # one customer's feedback stays in order
    phone = out["p1"].event.customer
    assert phone.id == out["p1"].key == pseudonymise("13812345678", "test-key") and phone.tier == "vip"
    assert out["c1"].event.customer.id == out["c1"].key == "c1001"  # opaque ids stay
    produced = b"".join(encode(o.event) + (o.key or "").encode() for o in result.outputs).decode().lower()
    assert "zhang@example.com" not in produced and "138 1234 5678" not in produced


def test_normalize_pseudonymises_without_being_given_a_key() -> None:
    event = RawFeedback.model_validate(raw("m1", "email", {"body": "退款"}, customer="li.wei@example.com"))
    local = ChannelSettings().pseudonym_key.get_secret_value()
    assert normalize(event).customer.id == pseudonymise("li.wei@example.com", local)
    assert normalize(event, pseudonym_key="other").customer.id != normalize(event).customer.id
