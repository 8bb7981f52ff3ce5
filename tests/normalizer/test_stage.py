"""The normalizer stage as pure logic: messages in, normalized events and dead letters out."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from consumers.normalizer import NormalizerStage
from consumers.normalizer.dedup import MemoryDedupIndex
from consumers.stage import InMessage, process_batch
from consumers.store import make_engine, migrate
from consumers.store.dedup_index import SqlDedupIndex
from topics.schemas import NormalizedFeedback
from topics.serde import encode
from topics.settings import ChannelSettings

FIXTURES = Path(__file__).parent / "fixtures"
SETTINGS = ChannelSettings()


def raw(event_id: str, channel: str, payload: dict[str, Any], customer: str = "c1", **extra: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "channel": channel,
        "source": "test",
        "received_at": "2026-11-16T09:00:00+08:00",
        "customer": {"id": customer},
        "payload": payload,
        **extra,
    }


def email_from(name: str, event_id: str = "m1", customer: str = "c1") -> dict[str, Any]:
    mime = base64.b64encode((FIXTURES / name).read_bytes()).decode()
    return raw(event_id, "email", {"mime_base64": mime}, customer)


def messages(*events: dict[str, Any] | bytes) -> list[InMessage]:
    return [
        InMessage("feedback.raw", 0, offset, None, e if isinstance(e, bytes) else json.dumps(e, ensure_ascii=False).encode())
        for offset, e in enumerate(events)
    ]


def stage(index=None) -> NormalizerStage:
    return NormalizerStage(max_event_bytes=256 * 1024, settings=SETTINGS, dedup_index=index)


def outputs(result) -> dict[str, NormalizedFeedback]:
    return {out.event.event_id: out.event for out in result.outputs}


def test_every_channel_comes_out_clean_and_redacted() -> None:
    result = process_batch(stage(), messages(
        raw("a1", "app", {"text": "更新到８．４．０后一打开就闪退，电话13812345678", "rating": 1, "app_version": "8.4.0", "os": "iOS 18"}),
        raw("s1", "social", {"text": "#外賣送餐慢# 又超時了[怒] //@美食達人:同樣遇到，電話13912345678", "platform": "weibo"}),
        email_from("gbk_quoted_reply.eml", "m1"),
        raw("e1", "email", {"subject": "退款", "body": "请退款到 6225 8812 3456 7898\n\n发自我的iPhone"}, metadata={"contact": "li.wei@example.com"}),
    ))
    assert not result.dead_letters
    out = outputs(result)
    app = out["a1"]
    assert app.text == "更新到8.4.0后一打开就闪退,电话[手机号]"
    assert app.pii == {"phone": 1}
    assert app.signals == {"rating": 1, "app_version": "8.4.0", "os": "iOS 18"}
    assert app.flags == ["low_rating"] and app.language == "zh"

    social = out["s1"]
    assert social.text == "外卖送餐慢 又超时了"
    assert social.signals["tags"] == ["外卖送餐慢"]
    assert social.signals["emoticons"] == ["怒"]
    assert social.signals["repost_of"] == {"author": "美食達人", "text": "同样遇到,电话[手机号]"}
    assert social.pii == {"phone": 1}
    assert {"repost_chain_removed", "traditional_converted"} <= set(social.flags)

    mail = out["m1"]
    assert mail.subject == "净化器坏了,要求换货"
    assert mail.text == "你好,我叫王堃,上周买的空气净化器用了三天就坏了,镕记门店也不给换。\n请尽快联系我:[手机号]。"
    assert {"quoted_reply_removed", "signature_removed"} <= set(mail.flags)

    plain = out["e1"]
    assert plain.text == "请退款到 [银行卡号]" and plain.subject == "退款"
    assert plain.metadata == {"contact": "[邮箱]"}
    assert plain.pii == {"bank_card": 1, "email": 1}
    # The raw numbers never leave the stage.
    produced = b"".join(encode(o.event) for o in result.outputs).decode()
    for secret in ("13812345678", "13912345678", "138 1234 5678", "6225 8812 3456 7898", "li.wei@example.com"):
        assert secret not in produced


def test_big5_html_mail_becomes_simplified_text() -> None:
    result = process_batch(stage(), messages(email_from("big5_html_only.eml")))
    mail = outputs(result)["m1"]
    assert mail.text == "您好:\n我订购的电视机萤幕有坏点,申请退货已经一个礼拜了还没有人处理。\n请尽快回复 谢谢"
    assert mail.subject == "退货申请没有处理"
    assert {"html_fallback", "quoted_reply_removed", "traditional_converted"} <= set(mail.flags)


def test_broken_mime_is_dead_lettered_with_its_original_bytes() -> None:
    broken = json.dumps(email_from("broken_multipart.eml", "bad-1")).encode()
    noise = json.dumps(email_from("not_an_email.eml", "bad-2")).encode()
    good = raw("ok", "app", {"text": "很好用"})
    result = process_batch(stage(), messages(broken, good, noise))
    assert [o.event.event_id for o in result.outputs] == ["ok"]
    assert [(d.reason.value, d.event_id) for d in result.dead_letters] == [("decode_failed", "bad-1"), ("decode_failed", "bad-2")]
    assert "StartBoundaryNotFoundDefect" in result.dead_letters[0].error
    assert result.dead_letters[0].original_bytes() == broken
    assert result.dead_letters[1].original_bytes() == noise


def test_posts_with_nothing_but_markup_are_dead_lettered() -> None:
    result = process_batch(stage(), messages(raw("s1", "social", {"text": "@小王 @小李 https://t.cn/abc"})))
    assert not result.outputs
    assert result.dead_letters[0].reason.value == "decode_failed"
    assert "no text left" in result.dead_letters[0].error


def test_long_text_is_truncated_and_foreign_text_flagged_not_dropped() -> None:
    long_text = "配送太慢了。" * 1000
    result = process_batch(stage(), messages(
        raw("long", "app", {"text": long_text}),
        raw("en", "app", {"text": "The app crashes every time I open the order page"}),
    ))
    out = outputs(result)
    assert len(out["long"].text) == SETTINGS.normalize.max_text_chars
    assert "truncated" in out["long"].flags and out["long"].signals["original_chars"] == len(long_text)
    assert out["en"].language == "en" and "non_chinese" in out["en"].flags


def test_duplicates_are_forwarded_and_linked() -> None:
    text = "外卖送了一个半小时才到，饭菜全凉了，骑手还不接电话，太差了。"
    result = process_batch(stage(MemoryDedupIndex(SETTINGS.dedup)), messages(
        raw("d1", "app", {"text": text}),
        raw("d2", "app", {"text": text + "!!"}),
        raw("d3", "social", {"text": "@客服 " + text.replace("太差了", "太差劲了")}, customer="c2"),
        raw("d4", "app", {"text": "希望能增加夜间模式，还有订单能按时间筛选就更好了。"}),
    ))
    assert {e: o.duplicate_of for e, o in outputs(result).items()} == {"d1": None, "d2": "d1", "d3": "d1", "d4": None}


def test_dedup_state_survives_a_stage_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    text = "外卖送了一个半小时才到，饭菜全凉了，骑手还不接电话，太差了。"

    def fresh_stage() -> NormalizerStage:
        engine = make_engine(url)
        migrate(engine)
        return stage(SqlDedupIndex(engine, SETTINGS.dedup))

    first = process_batch(fresh_stage(), messages(raw("d1", "app", {"text": text})))
    second = process_batch(fresh_stage(), messages(raw("d2", "app", {"text": text}), raw("d1", "app", {"text": text})))
    assert outputs(first)["d1"].duplicate_of is None
    # d2 is linked across the restart; the redelivered d1 is not a duplicate of itself.
    assert {e: o.duplicate_of for e, o in outputs(second).items()} == {"d2": "d1", "d1": None}


def test_dedup_can_be_switched_off() -> None:
    off = ChannelSettings(dedup={"enabled": False})
    s = NormalizerStage(settings=off, dedup_index=MemoryDedupIndex(off.dedup))
    result = process_batch(s, messages(raw("d1", "app", {"text": "一模一样的反馈内容"}), raw("d2", "app", {"text": "一模一样的反馈内容"})))
    assert [o.event.duplicate_of for o in result.outputs] == [None, None]


def test_an_unreachable_dedup_store_forwards_events_unlinked_and_flagged() -> None:
    from topics.embedded import free_port

    engine = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test?connect_timeout=2")
    try:
        result = process_batch(stage(SqlDedupIndex(engine, SETTINGS.dedup)), messages(raw("d1", "app", {"text": "一模一样的反馈内容"}), raw("d2", "app", {"text": "一模一样的反馈内容"})))
    finally:
        engine.dispose()
    assert not result.dead_letters
    assert [(o.event.duplicate_of, o.event.flags) for o in result.outputs] == [(None, ["dedup_unavailable"])] * 2


def test_no_generated_pii_survives_in_any_field() -> None:
    """Property: whatever channel and field carries them, valid numbers never reach the output."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from tests.normalizer.test_pii import card_numbers, id_numbers, mobile_numbers

    @settings(max_examples=60, deadline=None)
    @given(
        channel=st.sampled_from(["app", "social", "email"]),
        pii=st.lists(st.one_of(mobile_numbers(), id_numbers(), card_numbers()), min_size=1, max_size=3),
    )
    def check(channel: str, pii: list[str]) -> None:
        text = "，".join(f"我的号码{number}请尽快处理" for number in pii)
        payload = {"subject": f"投诉{pii[0]}", "body": text} if channel == "email" else {"text": text}
        result = process_batch(stage(), messages(raw("p1", channel, payload, metadata={"note": pii[-1]})))
        [out] = result.outputs
        produced = encode(out.event).decode()
        for number in pii:
            digits = "".join(ch for ch in number if ch.isdigit())
            assert number not in produced and digits[-8:] not in produced
        assert sum(out.event.pii.values()) >= len(pii)

    check()


def test_an_html_body_is_turned_into_text() -> None:
    body = "<div>优惠券用不了&nbsp;，请处理</div><blockquote>您好，请提供截图</blockquote>"
    result = process_batch(stage(), messages(raw("h1", "email", {"subject": "优惠券", "body": body})))
    mail = outputs(result)["h1"]
    assert mail.text == "优惠券用不了,请处理"
    assert mail.flags == ["html_fallback", "quoted_reply_removed"]
