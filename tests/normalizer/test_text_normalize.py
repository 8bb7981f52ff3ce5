from __future__ import annotations

from consumers.normalizer.text_normalize import clean_text, detect_language, tidy_emoji, tidy_whitespace, truncate


def test_full_width_letters_digits_and_punctuation_become_ordinary() -> None:
    assert clean_text("ＡＰＰ版本８．４．０闪退！！").text == "APP版本8.4.0闪退!!"


def test_traditional_becomes_simplified_and_is_flagged() -> None:
    cleaned = clean_text("你們在沒有通知的情況下自動續費")
    assert cleaned.text == "你们在没有通知的情况下自动续费"
    assert cleaned.flags == ["traditional_converted"]
    assert clean_text("你们自动续费").flags == []


def test_controls_and_zero_width_characters_go_whitespace_collapses() -> None:
    text = "退款\u200b没到\x00\t\t还在  处理\r\n\r\n\r\n  第二段  "
    assert clean_text(text).text == "退款没到 还在 处理\n第二段"


def test_emoji_are_kept_tidied_and_listed() -> None:
    text, emoji = tidy_emoji("太差了😡😡😡😡😡👍🏻")
    assert text == "太差了😡😡😡👍"
    assert emoji == ["😡", "😡", "😡", "👍"]


def test_whitespace_keeps_spaces_between_words() -> None:
    assert tidy_whitespace("外卖  超时   差评 !\n\n  iPhone 15 ") == "外卖 超时 差评!\niPhone 15"


def test_truncation_marks_and_keeps_the_head() -> None:
    text, cut = truncate("一" * 100, 50)
    assert cut and len(text) == 50 and text.endswith("…")
    assert truncate("短", 50) == ("短", False)
    # A placeholder cut in half is dropped, not left as "[手机".
    assert truncate("联" * 46 + "[手机号]", 50) == ("联" * 46 + "…", True)


def test_language_check() -> None:
    assert detect_language("外卖送了一个半小时才到") == "zh"
    assert detect_language("订单号88231,物流一直不更新,请帮忙查一下 my email is [邮箱]") == "zh"
    assert detect_language("The app crashes every time I open it") == "en"
    assert detect_language("注文した商品がまだ届きません") == "ja"
    assert detect_language("배송이 너무 늦어요") == "ko"
    assert detect_language("12345 !!!") == "und"
