"""E-mail decoding against fixture messages in GBK, Big5, GB18030 and UTF-8 (see fixtures/make_fixtures.py)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from consumers.normalizer.email_channel import EmailDecodeError, decode_bytes, decode_email
from consumers.normalizer.replies import strip_replies

FIXTURES = Path(__file__).parent / "fixtures"


def load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_gbk_text_labelled_gb2312_with_quoted_reply() -> None:
    content = decode_email(load("gbk_quoted_reply.eml"))
    # 堃 and 镕 exist in GBK only: decoding as strict GB2312 would fail.
    assert content.subject == "净化器坏了，要求换货"  # RFC 2047, reply prefix removed
    stripped = strip_replies(content.body)
    assert stripped.text == "你好，我叫王堃，上周买的空气净化器用了三天就坏了，镕记门店也不给换。\n请尽快联系我：138 1234 5678。"
    assert stripped.flags == ["quoted_reply_removed", "signature_removed"]


def test_big5_html_only_falls_back_to_text_and_drops_the_blockquote() -> None:
    content = decode_email(load("big5_html_only.eml"))
    assert content.subject == "退貨申請沒有處理"
    assert content.body == "您好：\n我訂購的電視機螢幕有壞點，申請退貨已經一個禮拜了還沒有人處理。\n請儘快回覆 謝謝"
    assert content.flags == ["html_fallback", "quoted_reply_removed"]


def test_utf8_multipart_prefers_plain_text_and_counts_attachments() -> None:
    content = decode_email(load("utf8_multipart_attachment.eml"))
    assert content.subject == "发票金额错误"
    assert content.body.startswith("客服你好，\n订单 20261114 的发票金额开错了")
    assert content.signals == {"attachments": 1}
    assert "html_fallback" not in content.flags
    assert strip_replies(content.body).text.endswith("退款请打到 4111 1111 1111 1111。")


def test_raw_8bit_gb18030_subject_and_outlook_header_block() -> None:
    content = decode_email(load("gb18030_raw_subject.eml"))
    assert content.subject == "会员被自动续费"
    assert strip_replies(content.body).text == "我没有开通自动续费，却被扣了298元，要求退款。"


@pytest.mark.parametrize(
    ("name", "reason"),
    [("broken_multipart.eml", "StartBoundaryNotFoundDefect"), ("not_an_email.eml", "no RFC 5322 headers")],
)
def test_broken_messages_raise(name: str, reason: str) -> None:
    with pytest.raises(EmailDecodeError, match=reason):
        decode_email(load(name))


def test_undecodable_body_raises() -> None:
    message = b"From: a@example.com\r\nSubject: x\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + bytes(range(0x80, 0x100)) * 4
    with pytest.raises(EmailDecodeError, match="not valid"):
        decode_email(message)


def test_charset_labels_are_widened_and_fallbacks_tried() -> None:
    assert decode_bytes("王堃".encode("gbk"), "gb2312") == ("王堃", False)
    assert decode_bytes("裏面".encode("big5hkscs"), "big5") == ("裏面", False)
    # Unlabelled GBK bytes: UTF-8 fails, GB18030 succeeds.
    assert decode_bytes("退款".encode("gbk"), None) == ("退款", False)
    # An unknown label falls back too.
    assert decode_bytes("退款".encode("utf-8"), "x-unknown-charset") == ("退款", False)


def test_one_stray_byte_is_repaired_not_fatal() -> None:
    data = ("退款还没有到账，" * 20).encode("utf-8") + b"\xff"
    text, repaired = decode_bytes(data, "utf-8")
    assert repaired and text.startswith("退款还没有到账")


def test_a_label_that_almost_fits_beats_an_accidental_fallback() -> None:
    data = "退款还没有到账".encode("utf-8") + b"\xff"
    text, repaired = decode_bytes(data, "utf-8")
    assert repaired and text == "退款还没有到账\ufffd"


def test_a_missing_closing_boundary_is_tolerated_and_flagged() -> None:
    message = (
        b"From: a@example.com\r\nSubject: =?utf-8?B?" + base64.b64encode("物流".encode()) + b"?=\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + "快递一直没到。".encode() + b"\r\n"
    )
    content = decode_email(message)
    assert (content.subject, content.body.strip(), content.flags) == ("物流", "快递一直没到。", ["mime_defects"])


def test_a_subject_only_message_has_an_empty_body() -> None:
    content = decode_email(b"From: a@example.com\r\nSubject: =?gb2312?B?" + base64.b64encode("退款还没到账".encode("gb2312")) + b"?=\r\n\r\n")
    assert (content.subject, content.body) == ("退款还没到账", "")
