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
    # Issuer prefixes with their networks' lengths: UnionPay, Visa, Mastercard, Amex, JCB, old domestic cards.
    prefix, lengths = draw(st.sampled_from([("62", (16, 19)), ("4", (16, 19)), ("5", (16, 16)), ("37", (15, 15)), ("35", (16, 19)), ("9", (16, 19))]))
    length = draw(st.integers(*lengths))
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
    # "订单号008613812345678": without a '+' or a gap, an order label wins over the country code.
    assume(not (number.startswith("0086") and _label(before) == "other"))
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


# --- the labelled case set -------------------------------------------------------------------------

from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

from consumers.normalizer.pii import pseudonymise, redact_identifier, redact_value  # noqa: E402
from consumers.normalizer.pii_report import evaluate, load_cases  # noqa: E402

CASES = Path(__file__).parent / "pii_cases.jsonl"
KINDS = ("phone", "landline", "id_number", "bank_card", "email")


def test_case_set_recall_per_kind_and_no_false_redactions() -> None:
    cases = load_cases(CASES)
    report = evaluate(cases)
    assert len(cases) >= 300 and report.lookalike_texts >= 150
    assert all(report.items[kind] >= 20 for kind in KINDS), report.items
    figures = report.figures()
    assert figures["recall"] == {kind: 1.0 for kind in report.items}, report.misses
    assert figures["typed"] == {kind: 1.0 for kind in report.items}, report.misses
    assert figures["false_redaction_rate"] == 0.0 and figures["lookalike_texts_changed_rate"] == 0.0, report.misses


def test_pii_report_prints_the_figures(capsys) -> None:
    from consumers.normalizer.pii_report import main

    assert main([str(CASES)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("PII redaction on pii_cases.jsonl")
    assert json.loads(lines[-1])["false_redaction_rate"] == 0.0


# --- generated numbers in the forms people write them ---------------------------------------------

import json  # noqa: E402

SEPARATORS = st.sampled_from([" ", "-", ".", "  ", " - ", "\u3000", "－"])
MOBILE_LABELS = st.sampled_from(["", "电话", "手机：", "手机号码是", "联系我 ", "tel:", "Mobile: ", "微信同号", "号码 "])


@st.composite
def grouped_mobiles(draw) -> str:
    digits = "1" + draw(st.sampled_from("3456789")) + draw(st.text("0123456789", min_size=9, max_size=9))
    sep = draw(SEPARATORS)
    body = draw(st.sampled_from([digits, f"{digits[:3]}{sep}{digits[3:7]}{sep}{digits[7:]}", f"{digits[:3]}{sep}{digits[3:]}"]))
    prefix = draw(st.sampled_from(["", "+86", "+86 ", "+86-", "0086 ", "(86)", "(+86) ", "（+86）", "86-"]))
    return prefix + body


@settings(max_examples=300)
@given(before=CONTEXT, label=MOBILE_LABELS, number=grouped_mobiles(), after=CONTEXT)
def test_mobiles_with_separators_and_country_codes_are_redacted(before: str, label: str, number: str, after: str) -> None:
    result = redact(f"{before}{label}{number}{after}")
    assert result.text == f"{before}{label}{PLACEHOLDERS['phone']}{after}"


AREA_CODES = st.one_of(
    st.just("010"),
    st.integers(20, 29).map(lambda n: f"0{n}"),
    st.integers(300, 999).map(lambda n: f"0{n}"),
)


@st.composite
def landlines(draw) -> tuple[str, bool]:
    """A landline as written, and whether it needs a label (a local part starting with 0 or 1)."""
    area = draw(AREA_CODES)
    local = draw(st.text("0123456789", min_size=7, max_size=8))
    sep = draw(SEPARATORS)
    local_written = draw(st.sampled_from([local, f"{local[:-4]}{sep}{local[-4:]}"]))
    style = draw(st.sampled_from(["sep", "paren", "+86", "contiguous"]))
    if style == "sep":
        number = f"{area}{sep}{local_written}"
    elif style == "paren":
        number = f"({area}){draw(st.sampled_from(['', ' ', '-']))}{local_written}"
    elif style == "+86":
        number = f"+86{draw(st.sampled_from([' ', '-']))}{area[1:]}{sep}{local_written}"
    else:
        number = area + local
    return number, local[0] in "01"


@settings(max_examples=300)
@given(before=CONTEXT, number=landlines(), after=CONTEXT, label=st.sampled_from(["座机", "电话：", "固话 ", "联系电话是", "Tel: "]))
def test_labelled_landlines_are_redacted(before: str, number: tuple[str, bool], after: str, label: str) -> None:
    written, _ = number
    assume(not (label[0].isascii() and before[-1:].isascii() and before[-1:].isalpha()))  # "YTel:" is no label
    result = redact(f"{before}{label}{written}{after}")
    assert result.text == f"{before}{label}{PLACEHOLDERS['landline']}{after}"


@settings(max_examples=300)
@given(before=CONTEXT, number=landlines(), after=CONTEXT)
def test_unlabelled_landlines_with_an_ordinary_local_part_are_redacted(before: str, number: tuple[str, bool], after: str) -> None:
    written, needs_label = number
    assume(not needs_label and _label(before) is None)
    result = redact(f"{before}{written}{after}")
    assert result.text == f"{before}{PLACEHOLDERS['landline']}{after}"


@settings(max_examples=300)
@given(before=CONTEXT, number=id_numbers(), after=CONTEXT, sep=SEPARATORS, grouping=st.sampled_from([(6, 14), (4, 8, 12, 16), (6, 10, 14), (3, 6, 10, 14)]))
def test_grouped_id_numbers_are_redacted(before: str, number: str, after: str, sep: str, grouping: tuple[int, ...]) -> None:
    cuts = (0, *grouping, 18)
    written = sep.join(number[a:b] for a, b in zip(cuts, cuts[1:]))
    result = redact(f"{before}{written}{after}")
    assert result.text == f"{before}{PLACEHOLDERS['id_number']}{after}"


@settings(max_examples=300)
@given(before=CONTEXT, number=card_numbers(), after=CONTEXT, sep=SEPARATORS)
def test_cards_grouped_in_fours_with_any_separator_are_redacted(before: str, number: str, after: str, sep: str) -> None:
    digits = number.replace(" ", "")
    assume(not (len(digits) == 18 and id_number_valid(digits)))
    assume(_label(before) != "other" and not (before[-2:].isascii() and before[-2:].isupper()))
    written = sep.join(digits[i : i + 4] for i in range(0, len(digits), 4))
    result = redact(f"{before}{written}{after}")
    assert result.text == f"{before}{PLACEHOLDERS['bank_card']}{after}"


LOCAL = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789"), min_size=1, max_size=12)
DOMAIN = st.sampled_from(["qq.com", "163.com", "example.com.cn", "mail.example.org", "gmail.com", "sina.cn"])


@settings(max_examples=300)
@given(before=st.text(CJK, max_size=6), digits=st.text("0123456789", max_size=4), local=LOCAL, domain=DOMAIN, after=st.text(CJK, max_size=6))
def test_emails_glued_to_chinese_text_and_digits_are_redacted(before: str, digits: str, local: str, domain: str, after: str) -> None:
    # Digits glued in front belong to the address as far as anyone can tell ("QQ邮箱12345@qq.com").
    result = redact(f"{before}{digits}{local}@{domain}{after}")
    assert result.text == f"{before}{PLACEHOLDERS['email']}{after}"
    assert result.counts == {"email": 1}


# --- look-alikes stay -----------------------------------------------------------------------------

ORDER_LABELS = st.sampled_from(["订单号", "订单号：", "快递单号 ", "运单号:", "单号", "流水号 ", "编号", "SKU ", "券码 "])


@settings(max_examples=300)
@given(label=ORDER_LABELS, body=st.text("0123456789", min_size=12, max_size=20), after=st.text(CJK, max_size=6))
def test_labelled_order_and_tracking_numbers_stay_even_when_they_pass_luhn(label: str, body: str, after: str) -> None:
    assume(not (len(body) == 18 and id_number_valid(body)))  # an ID number is redacted whatever the label
    text = f"{label}{body}{after}"
    assert redact(text).text == text


@settings(max_examples=300)
@given(
    day=st.dates(date(1990, 1, 1), date(2099, 12, 31)),
    fmt=st.sampled_from(["%Y-%m-%d", "%Y.%m.%d", "%Y%m%d", "%Y/%m/%d", "%Y-%m-%d %H:%M", "%Y年%m月%d日"]),
    label=st.sampled_from(["", "电话 ", "时间 ", "手机 "]),
)
def test_dates_stay_even_after_a_phone_label(day: date, fmt: str, label: str) -> None:
    text = f"{label}{day.strftime(fmt)} 打过"
    assert redact(text).text == text


@settings(max_examples=300)
@given(
    amount=st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False, allow_infinity=False),
    style=st.sampled_from(["¥{}", "￥{}", "{}元", "{} 元", "RMB {}", "{}块", "共{}元"]),
    label=st.sampled_from(["", "金额", "退款", "电话里说退", "联系了三次，退了"]),
)
def test_amounts_stay(amount, style: str, label: str) -> None:
    text = label + style.format(amount)
    assert redact(text).text == text


@settings(max_examples=300)
@given(parts=st.lists(st.integers(0, 99), min_size=2, max_size=5), prefix=st.sampled_from(["", "v", "V", "版本", "version ", "iOS ", "Android "]))
def test_versions_stay(parts: list[int], prefix: str) -> None:
    text = f"更新到{prefix}{'.'.join(map(str, parts))}后闪退"
    assert redact(text).text == text


# --- metadata, identifiers, pseudonyms ------------------------------------------------------------


def test_metadata_keys_are_redacted_recursively_and_kept_apart() -> None:
    counts: Counter[str] = Counter()
    value = {"13812345678": "回访", "13987654321": "投诉", "contacts": [{"li@example.com": {"tel": "010-12345678"}}], "n": 3}
    assert redact_value(value, counts) == {
        "[手机号]": "回访",
        "[手机号]#2": "投诉",
        "contacts": [{"[邮箱]": {"tel": "[座机]"}}],
        "n": 3,
    }
    assert counts == {"phone": 2, "email": 1, "landline": 1}


def test_identifiers_keep_luhn_look_alikes_but_not_contact_data() -> None:
    counts: Counter[str] = Counter()
    assert redact_identifier("4951234567890128", counts) == "4951234567890128"  # a post id that passes Luhn
    assert redact_identifier("https://weibo.com/u/13812345678?mail=li@example.com", counts) == "https://weibo.com/u/[手机号]?mail=[邮箱]"
    assert counts == {"phone": 1, "email": 1}


def test_contact_customer_ids_get_stable_keyed_pseudonyms() -> None:
    key = "k1"
    mail = pseudonymise("Li.Wei@Example.com", key)
    assert mail.startswith("pid_") and len(mail) == 36
    assert pseudonymise(" li.wei@example.com ", key) == mail  # case and spaces do not split one customer
    phone = pseudonymise("13812345678", key)
    assert {pseudonymise(v, key) for v in ("+86 138 1234 5678", "0086-138-1234-5678", "138-1234-5678")} == {phone}
    assert pseudonymise("13812345678", "k2") != phone  # the key matters
    assert pseudonymise(mail, key) == mail  # already a pseudonym
    for opaque in ("c1001", "user-42", "8823"):
        assert pseudonymise(opaque, key) == opaque
    assert pseudonymise("wx_13812345678", key).startswith("pid_")  # contact data inside an id
