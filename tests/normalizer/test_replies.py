from __future__ import annotations

from consumers.normalizer.replies import strip_replies


def test_original_message_block_is_cut() -> None:
    text = "退款还没到账。\n\n-----原始邮件-----\n发件人: 客服\n发送时间: 2026年11月15日\n\n已受理"
    result = strip_replies(text)
    assert result.text == "退款还没到账。"
    assert result.flags == ["quoted_reply_removed"]


def test_wrote_line_and_quote_marks_are_cut() -> None:
    text = "发票开错了\n在 2026年11月15日 18:20，客服中心 <s@example.cn> 写道：\n> 已开具"
    assert strip_replies(text).text == "发票开错了"
    assert strip_replies("好的\nOn Sun, Nov 15, 2026 at 9:00 PM Service <s@x.cn> wrote:\n> ok").text == "好的"


def test_interleaved_quote_lines_are_dropped() -> None:
    result = strip_replies("> 请问哪天下的单？\n11月10日下的单\n> 订单号呢？\n88231")
    assert result.text == "11月10日下的单\n88231"
    assert "quoted_reply_removed" in result.flags


def test_header_block_without_separator_is_cut() -> None:
    text = "我没开自动续费\n\nFrom: Service <s@x.cn>\nSent: Sunday\nTo: me\nSubject: 续费通知\n\n已续费"
    assert strip_replies(text).text == "我没开自动续费"


def test_a_lone_from_line_in_the_body_is_not_a_header_block() -> None:
    text = "From: 上海的用户\n快递三天没动了"
    assert strip_replies(text).text == text


def test_signatures_and_client_trailers_go() -> None:
    result = strip_replies("商品坏了\n-- \n张三\n电话 13812345678")
    assert result.text == "商品坏了" and result.flags == ["signature_removed"]
    assert strip_replies("请尽快处理\n\n发自我的iPhone").text == "请尽快处理"
    assert strip_replies("请尽快处理\nSent from my Huawei Mate 60").text == "请尽快处理"


def test_body_lines_that_look_like_trailers_stay_when_not_at_the_end() -> None:
    text = "来自北京的用户反馈\n快递员态度很差"
    assert strip_replies(text).text == text


def test_a_message_that_is_only_a_quote_is_kept() -> None:
    # Nothing of the customer's own: keep the text rather than send an empty message.
    assert strip_replies("> 原来的问题还没解决").text == "> 原来的问题还没解决"
