"""PII redaction: personal data becomes typed placeholders before text leaves the raw topic.

Recognised: e-mail addresses, 18-digit resident ID numbers (valid checksum and
birth date), bank card numbers (13–19 digits passing Luhn), mainland mobile
numbers (optionally +86/0086, spaces or dashes) and landlines with an area
code. Number look-alikes that fail their checksum are left alone, so order
numbers and amounts survive.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date

PLACEHOLDERS: dict[str, str] = {
    "email": "[邮箱]",
    "id_number": "[身份证号]",
    "bank_card": "[银行卡号]",
    "phone": "[手机号]",
    "landline": "[座机]",
}

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"

# Digit runs must not continue into more digits (or an ID's X) on either side.
_NO_DIGIT_BEFORE = r"(?<![0-9])"
_NO_DIGIT_AFTER = r"(?![0-9])"

_EMAIL = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,24}(?![A-Za-z0-9])")
_ID_NUMBER = re.compile(_NO_DIGIT_BEFORE + r"[1-9]\d{16}[0-9Xx]" + _NO_DIGIT_AFTER)
# Cards are often written in groups of four separated by one space or dash.
# A trailing X makes 17 digits an ID-number look-alike, not a card.
_NOT_ID_TAIL = r"(?![0-9Xx])"
_BANK_CARD = re.compile(_NO_DIGIT_BEFORE + r"(?:\d{4}[ -]){3,4}\d{1,7}" + _NOT_ID_TAIL + r"|" + _NO_DIGIT_BEFORE + r"\d{13,19}" + _NOT_ID_TAIL)
_MOBILE = r"1[3-9]\d(?:[ -]?\d{4}){2}"
_PHONE = re.compile(r"(?<![0-9+])(?:(?:\+|00)86[ -]?" + _MOBILE + "|" + _MOBILE + ")" + _NO_DIGIT_AFTER)
_LANDLINE = re.compile(
    _NO_DIGIT_BEFORE + r"(?:\(0\d{2,3}\)|（0\d{2,3}）|0\d{2,3})[ -]?[2-8]\d{6,7}(?:[ -]?(?:转|ext\.?|x)[ -]?\d{1,5})?" + _NO_DIGIT_AFTER
)


@dataclass
class Redaction:
    text: str
    counts: dict[str, int] = field(default_factory=dict)


def id_number_valid(candidate: str) -> bool:
    """An 18-digit resident ID number: checksum (GB 11643) and a real birth date."""
    if len(candidate) != 18 or not candidate[:17].isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(candidate[:17], _ID_WEIGHTS))
    if _ID_CHECK[total % 11] != candidate[17].upper():
        return False
    try:
        born = date(int(candidate[6:10]), int(candidate[10:12]), int(candidate[12:14]))
    except ValueError:
        return False
    return 1900 <= born.year <= 2100


def luhn_valid(digits: str) -> bool:
    if not digits.isdigit():
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _bank_card(match: re.Match[str]) -> bool:
    digits = _digits(match.group(0))
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


def _phone(match: re.Match[str]) -> bool:
    digits = _digits(match.group(0))
    return len(digits) in (11, 13, 15)  # bare, 86-prefixed, 0086-prefixed


# Order matters: an 18-digit ID before cards (it may pass Luhn), a prefixed phone before cards (+86… may too).
_RULES: tuple[tuple[str, re.Pattern[str], object], ...] = (
    ("email", _EMAIL, None),
    ("id_number", _ID_NUMBER, lambda m: id_number_valid(m.group(0))),
    ("phone", _PHONE, _phone),
    ("bank_card", _BANK_CARD, _bank_card),
    ("landline", _LANDLINE, None),
)


def redact(text: str) -> Redaction:
    """Replace every recognised PII item by its placeholder; count them by type."""
    counts: Counter[str] = Counter()
    for kind, pattern, accept in _RULES:
        placeholder = PLACEHOLDERS[kind]

        def replace(match: re.Match[str], kind: str = kind, accept=accept, placeholder: str = placeholder) -> str:
            if accept is not None and not accept(match):
                return match.group(0)
            counts[kind] += 1
            return placeholder

        text = pattern.sub(replace, text)
    return Redaction(text, dict(counts))


def redact_value(value: object, counts: Counter[str]) -> object:
    """Redact strings anywhere inside JSON-like metadata, adding to ``counts``."""
    if isinstance(value, str):
        result = redact(value)
        counts.update(result.counts)
        return result.text
    if isinstance(value, dict):
        return {key: redact_value(item, counts) for key, item in value.items()}
    if isinstance(value, list):
        return [redact_value(item, counts) for item in value]
    return value
