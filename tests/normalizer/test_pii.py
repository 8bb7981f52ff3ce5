"""PII redaction: property tests over generated numbers, plus the formats people actually write."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from consumers.normalizer.pii import PLACEHOLDERS, _label, id_number_valid, luhn_valid, redact

# Context around a number: Chinese text and punctuation, never a digit or '+' (which would extend the number).
CJK = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5)
CONTEXT = st.text(alphabet=st.one_of(CJK, st.sampled_from(list("，。！？、 ：（）abcYZ"))), max_size=12)
WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def id_check_digit(first17: str) -> str:
    return "10X98765432"[sum(int(d) * w for d, w in zip(first17, WEIGHTS)) % 11]


@st.composite
def mobile_numbers(draw) -> str:
    digits = "1" + draw(st.sampled_from("3456789")) + draw(st.text("0123456789", min_size=9, max_size=9))
    style = draw(st.sampled_from(["plain", "spaced", "dashed", "+86", "+86 spaced", "+86-", "0086"]))
    grouped = lambda sep: f"{digits[:3]}{sep}{digits[3:7]}{sep}{digits[7:]}"  # noqa: E731
    return {
        "plain": digits,
        "spaced": grouped(" "),
        "dashed": grouped("-"),
        "+86": "+86" + digits,
        "+86 spaced": "+86 " + grouped(" "),
        "+86-": "+86-" + grouped("-"),
        "0086": "0086" + digits,
    }[style]


@st.composite
def id_numbers(draw, valid: bool = True) -> str:
    region = draw(st.sampled_from(["110105", "310104", "440305", "510107", "650102", "330106"]))
    born = date(1930, 1, 1) + timedelta(days=draw(st.integers(0, 33_000)))
    first17 = region + born.strftime("%Y%m%d") + draw(st.text("0123456789", min_size=3, max_size=3))
    check = id_check_digit(first17)
    if not valid:
        check = draw(st.sampled_from([c for c in "0123456789X" if c != check]))
    return first17 + check


def luhn_check_digit(body: str) -> str:
    for candidate in "0123456789":
        if luhn_valid(body + candidate):
            return candidate
    raise AssertionError("unreachable")


@st.composite
def card_numbers(draw, valid: bool = True) -> str:
    prefix = draw(st.sampled_from(["62", "4", "5", "37"]))
    length = draw(st.integers(13, 19))
    body = prefix + draw(st.text("0123456789", min_size=length - len(prefix) - 1, max_size=length - len(prefix) - 1))
    check = luhn_check_digit(body)
    if not valid:
        check = draw(st.sampled_from([c for c in "0123456789" if c != check]))
    number = body + check
    if draw(st.booleans()):
        number = " ".join(number[i : i + 4] for i in range(0, len(number), 4))
    return number


@settings(max_examples=300)
@given(before=CONTEXT, number=mobile_numbers(), after=CONTEXT)
def test_valid_mobile_numbers_are_always_redacted(before: str, number: str, after: str) -> None:
    result = redact(f"{before}{number}{after}")
    assert result.text == f"{before}{PLACEHOLDERS['phone']}{after}"
    assert result.counts == {"phone": 1}


@settings(max_examples=300)
@given(before=CONTEXT, number=id_numbers(), after=CONTEXT, lower_x=st.booleans())
def test_valid_id_numbers_are_always_redacted(before: str, number: str, after: str, lower_x: bool) -> None:
    number = number.lower() if lower_x else number
    result = redact(f"{before}{number}{after}")
    assert result.text == f"{before}{PLACEHOLDERS['id_number']}{after}"
    assert result.counts == {"id_number": 1}


@settings(max_examples=300)
@given(before=CONTEXT, number=card_numbers(), after=CONTEXT)
def test_luhn_valid_card_numbers_are_always_redacted(before: str, number: str, after: str) -> None:
    digits = number.replace(" ", "")
    assume(not (len(digits) == 18 and id_number_valid(digits)))  # that one is an ID number
    assume(_label(before) != "other")  # "订单号 6225…" is said to be an order number
    assume(not (before[-2:].isascii() and before[-2:].isupper()))  # "SF6225…": a courier's tracking number
    result = redact(f"{before}{number}{after}")
    assert result.text == f"{before}{PLACEHOLDERS['bank_card']}{after}"
    assert result.counts == {"bank_card": 1}


@settings(max_examples=300)
@given(before=CONTEXT, number=id_numbers(valid=False), after=CONTEXT)
def test_id_look_alikes_with_a_wrong_check_digit_stay(before: str, number: str, after: str) -> None:
    assume(not luhn_valid(number))  # an 18-digit Luhn-valid string is a card number
    assume(_label(before) is None)  # after "身份证号" the shape and birth date are enough
    text = f"{before}{number}{after}"
    assert redact(text).text == text


@settings(max_examples=300)
@given(before=CONTEXT, number=card_numbers(valid=False), after=CONTEXT)
def test_card_look_alikes_failing_luhn_stay(before: str, number: str, after: str) -> None:
    assume(not id_number_valid(number.replace(" ", "")))
    assume(_label(before) is None)  # after "卡号" no Luhn check is needed
    text = f"{before}{number}{after}"
    assert redact(text).text == text


@given(before=CONTEXT, second=st.sampled_from("012"), rest=st.text("0123456789", min_size=9, max_size=9), after=CONTEXT)
def test_eleven_digit_numbers_outside_mobile_ranges_stay(before: str, second: str, rest: str, after: str) -> None:
    assume(_label(before) is None)  # after "电话" any 7–12-digit run is redacted
    text = f"{before}1{second}{rest}{after}"
    assert redact(text).text == text


# Text without PII: words, punctuation and short numbers (order numbers, amounts, dates).
WORDS = st.text(alphabet=st.one_of(CJK, st.sampled_from(list("，。！？、：；（）《》“”…—abcdefghijklmnopqrstuvwxyzABC .-#"))), min_size=1, max_size=15)
SHORT_NUMBER = st.text("0123456789", min_size=1, max_size=6)


@settings(max_examples=300)
@given(st.lists(st.tuples(WORDS, SHORT_NUMBER), max_size=8), WORDS)
def test_text_without_pii_is_unchanged(parts: list[tuple[str, str]], tail: str) -> None:
    text = "".join(words + "元" + number for words, number in parts) + tail
    result = redact(text)
    assert result.text == text
    assert result.counts == {}


def test_formats_seen_in_real_feedback() -> None:
    text = (
        "电话+86 138-1234-5678，身份证11010519491231002X，卡号6225 8812 3456 7898，"
        "邮箱li.wei@example.com，座机(010)62345678转123，订单号88231，金额298元，时间2026-11-16"
    )
    result = redact(text)
    assert result.text == (
        "电话[手机号]，身份证[身份证号]，卡号[银行卡号]，邮箱[邮箱]，座机[座机]，订单号88231，金额298元，时间2026-11-16"
    )
    assert result.counts == {"phone": 1, "id_number": 1, "bank_card": 1, "email": 1, "landline": 1}


def test_an_id_with_an_impossible_birth_date_is_not_an_id() -> None:
    first17 = "11010519491331002"  # month 13
    number = first17 + id_check_digit(first17)
    assert not id_number_valid(number)
    assert "[身份证号]" not in redact(f"号码{number}").text


def test_two_numbers_are_counted_separately() -> None:
    result = redact("13812345678 或 13987654321")
    assert result.text == "[手机号] 或 [手机号]"
    assert result.counts == {"phone": 2}
