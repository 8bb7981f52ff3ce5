"""PII redaction: personal data becomes typed placeholders before text leaves the raw topic.

Two kinds of evidence, applied to every digit run (digits with spaces, dashes, dots or
brackets between groups, an optional ``+``/``00`` country code):

* **the number's own rules** — an 18-character resident ID number with a province code,
  a valid GB 11643 check character and a real birth date; a mainland mobile ``1[3-9]`` +
  9 digits (optionally ``+86``/``0086``/``(86)``); a landline whose area code is a real
  mainland one (``010``, ``02x``, ``0[3-9]xx``) followed by 7–8 digits; a card number
  with a card network's prefix and length that passes Luhn; any ``+<country code>``
  number of 10–15 digits. Groups must look like how people write these numbers
  (``138 1234 5678``, ``6225 8812 3456 7898``, ``440305 19770426 3311``), so
  ``4.5 13812345678`` is a rating and a phone, and ``6200 0000 0000 0013 0`` one
  17-digit number rather than a card and a 0.
* **a label right before the run** — ``电话/手机/座机/联系/tel/phone…`` makes any
  7–12-digit run a phone number (landlines with local parts starting 0/1, locals
  without area code); ``QQ/微信`` makes a 5–12-digit run (or a WeChat id) an
  instant-messaging account; ``身份证/证件号`` an ID number without checking
  the check character; ``卡号/银行卡/账号`` a card number without Luhn.

A label such as ``订单号/快递单号/编号/金额/版本/型号/IMEI`` marks the number as
something else: it suppresses label evidence, landlines, Luhn-only card matches and
bare ``86…`` prefixes (mobiles and checksummed ID numbers are still redacted). Amounts
(``¥``/``元``/``%``), dates and times, service numbers (``400``/``800``, ``95588``) and runs
glued to two or more capital letters (tracking numbers such as ``SF1234567890123``)
are kept. E-mail addresses are found even when glued to Chinese text or digits.

The measured recall and false redactions are in docs/channels.md (``python -m
consumers.normalizer.pii_report``).
"""

from __future__ import annotations

import hashlib
import hmac
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
    "im_account": "[社交账号]",
}
# Any placeholder, and the start of one that a cut left unfinished (for dedup, language detection, truncation).
PLACEHOLDER = re.compile("|".join(re.escape(p) for p in PLACEHOLDERS.values()))
PARTIAL_PLACEHOLDER = re.compile(
    "(?:" + "|".join(re.escape(p[:i]) for p in PLACEHOLDERS.values() for i in range(1, len(p))) + ")$"
)

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"

# Matching runs on a folded copy of the text: full-width forms → ASCII, dashes → '-', one character for one,
# so positions stay the same and the original characters around a placeholder are kept.
_FOLD = str.maketrans(
    {chr(0xFF01 + i): chr(0x21 + i) for i in range(94)}
    | {"\u3000": " ", "\u00a0": " ", "\u2009": " ", "\u202f": " "}
    | {c: "-" for c in "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63"}
)

# --- e-mail -------------------------------------------------------------------------------------

_COMMON_TLDS = frozenset("com cn net org edu gov io hk tw mo info me co biz top xyz vip cc".split())
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])(?P<local>[A-Za-z0-9][A-Za-z0-9._%+-]{0,63})"
    r"(?P<at> ?@ ?|\((?:at|AT)\)|\[(?:at|AT)\]|#)"
    rf"(?P<domain>{_LABEL}(?:[.。]{_LABEL})*[.。](?P<tld>[A-Za-z]{{2,24}}))(?![A-Za-z])"
)


def _email_ok(match: re.Match[str]) -> bool:
    # The unusual spellings (`。` for the dot, `#`/`(at)` for the @) only with a familiar top-level domain.
    unusual = "。" in match.group("domain") or match.group("at").strip() != "@"
    return not unusual or match.group("tld").lower() in _COMMON_TLDS


# --- labels before a number ---------------------------------------------------------------------

# What a number is said to be. The longest label wins (search finds the earliest start).
_LABELS: dict[str, tuple[str, ...]] = {
    # Identifiers of things, money and versions: never a person's number.
    "other": (
        "订单号码", "订单编号", "订单号", "订单", "子订单", "单号", "快递单号", "快递号", "运单号", "运单", "物流单号",
        "物流号", "包裹号", "流水号", "交易号", "交易单号", "交易流水", "支付单号", "退款单号", "商户单号", "工单号",
        "工单", "编号", "序列号", "序号", "sn", "s/n", "imei", "meid", "货号", "商品号", "商品编号", "sku", "批次号",
        "批次", "批号", "型号", "版本号", "版本", "version", "ver", "build", "金额", "价格", "价钱", "售价", "原价",
        "现价", "单价", "总价", "合计", "总计", "共计", "实付", "实付款", "退款金额", "余额", "积分", "发票号码",
        "发票号", "发票代码", "券码", "兑换码", "验证码", "校验码", "取件码", "提货码", "取货码", "会员号",
        "会员卡号", "会员卡", "房间号", "房号", "车次", "航班号", "航班", "座位号", "学号", "工号", "邮编",
        "邮政编码", "isbn", "条码", "条形码", "单据号", "合同号", "保单号", "案件号", "报案号", "投诉单号",
        "受理号", "预约号", "门牌号", "车牌号", "群号", "qq群", "微信群", "尾号", "后四位", "末四位", "order",
        "order no", "tracking", "tracking no", "invoice", "serial", "model", "ref",
        "商品id", "商品编码", "产品id", "产品编号", "订单id", "交易id", "物流id", "item id", "order id", "sku id", "spu",
        "iccid", "保修卡号", "保修卡", "礼品卡号", "礼品卡", "购物卡号", "购物卡", "储值卡", "充值卡", "积分卡", "公交卡",
        "学生卡", "门禁卡", "优惠码", "激活码", "序列码", "卡密",
        # couriers: what follows their name is a tracking number
        "快递", "顺丰", "中通", "圆通", "申通", "韵达", "百世", "极兔", "邮政", "ems", "京东物流", "德邦", "菜鸟",
        # Traditional script (metadata is not converted)
        "訂單號", "訂單", "單號", "快遞單號", "運單號", "編號", "序號", "金額", "價格", "版本號", "型號", "發票號碼",
    ),
    "id": (
        "身份证号码", "身份证号", "身份证", "证件号码", "证件号", "身份号码", "公民身份号码", "身份信息", "id card",
        "idcard", "id no", "id number", "id", "身份證號碼", "身份證號", "身份證", "證件號碼", "證件號",
    ),
    "card": (
        "银行卡号", "银行卡", "卡号", "储蓄卡", "信用卡", "借记卡", "银行账号", "银行账户", "银行帐号", "账号",
        "帐号", "账户", "帐户", "收款账户", "收款账号", "对公账户", "card no", "card number", "card",
        "account no", "account number", "account", "卡", "銀行卡號", "銀行卡", "卡號", "帳戶", "賬號", "信用卡號",
    ),
    "im": (
        "qq号码", "qq号", "qq", "扣扣", "企鹅号", "微信号", "微信", "vx", "wx", "v信", "威信", "wechat", "weixin",
        "钉钉", "dingtalk", "微信號", "qq號",
    ),
    "phone": (
        "电话号码", "电话", "手机号码", "手机号", "手机", "座机号码", "座机", "固话", "固定电话", "联系电话",
        "联系方式", "联系号码", "联系人", "联系", "来电", "致电", "拨打", "回电", "打给", "拨", "号码",
        "热线", "传真", "短信", "tel", "telephone", "phone", "mobile", "mob", "cell", "call", "fax", "whatsapp",
        "line", "電話號碼", "電話", "手機號碼", "手機號", "手機", "手提電話", "手提", "座機", "聯繫電話", "聯絡電話",
        "聯繫方式", "聯絡方式", "聯繫", "聯絡", "號碼", "傳真", "來電",
    ),
}
# Words between a label and its number: "手机号码是：", "联系我 ", "电话(微信同号)".
_FILLER = (
    r"(?:[\s:=#\-]|号码|號碼|号|號|码|碼|是|为|為|的|我|本人|如下|同微信|微信同号|同号|\((?:同微信|微信同号|同号)\)|"
    r"me|at|on|no\.?|number|is|请|直接|给|至|到)"
)


def _alternatives(words: tuple[str, ...]) -> str:
    # An ASCII label must be a word of its own ("tel", not "hotel"); Chinese ones may follow anything.
    return "|".join(
        (r"(?<![a-z])" if w.isascii() else "") + re.escape(w) for w in sorted(words, key=len, reverse=True)
    )


_LABEL_RE = re.compile(
    "(?:" + "|".join(f"(?P<{kind}>{_alternatives(words)})" for kind, words in _LABELS.items()) + rf"){_FILLER}{{0,6}}$"
)
_LIST_GAP = re.compile(r"^\s*(?:[,、/;或和及]|or|and)\s*$")
_WINDOW = 24


def _label(before: str) -> str | None:
    match = _LABEL_RE.search(before[-_WINDOW:].lower())
    return match.lastgroup if match else None


# WeChat ids: a letter, then 5–19 letters, digits, '_' or '-'; only after a WeChat label.
_WECHAT_ID = re.compile(
    r"(?:(?P<label>微信号|微信|v信|威信|(?<![A-Za-z])(?:wechat|weixin|vx|wx))(?P<filler>" + _FILLER + r"{0,6})"
    r"(?P<id>[A-Za-z][A-Za-z0-9_-]{5,19})|(?P<wxid>wxid_[A-Za-z0-9_-]{4,30}))(?![A-Za-z0-9_-])",
    re.I,
)
_WECHAT_HINT = re.compile(r"微信|wechat|weixin|vx|wx|v信|威信")
_NOT_WECHAT_IDS = re.compile(r"^(?:iphone|ipad|android|ios|harmony|mac|windows|win|version|ver|beta|pc|app|web)", re.I)


def _wechat_id(match: re.Match[str], before: str) -> bool:
    if match.group("wxid"):
        return True
    candidate = match.group("id")
    if _NOT_WECHAT_IDS.match(candidate):
        return False
    # "微信号 zhangsan", "微信: abc_123", "加我微信 abc123": the label says the word is an id.
    said = match.group("label").endswith("号") or any(c in match.group("filler") for c in ":号是为") or "加" in before[-3:]
    return said and (match.group("label").endswith("号") or any(c.isdigit() or c in "_-" for c in candidate))


# --- digit runs ---------------------------------------------------------------------------------

_SEP = r"(?:[ \t]{0,2}[-.][ \t]{0,2}|[ \t]{1,2})"
_GROUP = r"(?:\([ \t]?\+?\d{1,4}[ \t]?\)|\d+)"
_RUN = re.compile(rf"(?<![0-9])(?:\+[ \t]?)?{_GROUP}(?:(?:{_SEP}|(?<=\))[ \t]?-?[ \t]?|(?=\()){_GROUP})*")
_GROUP_IN_RUN = re.compile(r"\([ \t]?(\+?)(\d{1,4})[ \t]?\)|(\d+)")
_EXTENSION = re.compile(r"[ \t]?(?:转|分机|ext\.?|x|-)[ \t]?\d{1,5}(?![0-9])", re.I)
_TIME_AFTER = re.compile(r":\d")
_CODE_PREFIX = re.compile(r"(?<![A-Za-z])[A-Z]{2,6}$")
_CURRENCY_BEFORE = re.compile(r"(?:[¥￥$€£]|rmb|cny|usd|hk\$|人民币)[ \t]?$", re.I)
_UNIT_AFTER = re.compile(r"^[ \t]?(?:元|块|圆|万|亿|角|%|‰|rmb|cny|yuan|美元|美金|港币|日元)", re.I)
# Companies' service numbers, not a person's: 400/800 hotlines, 1010xxxx, 95xxx/96xxx.
_SERVICE = re.compile(r"^(?:[48]00\d{7}|1010\d{4}|9[56]\d{3,6})$")


@dataclass
class _Group:
    start: int
    end: int
    digits: str
    paren: bool
    sep: str  # what stands between the previous group and this one ("" for the first)


@dataclass
class _Span:
    start: int
    end: int
    kind: str


def _id_date_ok(year: int, month: int, day: int) -> bool:
    try:
        born = date(year, month, day)
    except ValueError:
        return False
    return 1900 <= born.year <= 2100


# Province codes (GB/T 2260) an ID number starts with.
_PROVINCES = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 61 62 63 64 65 71 81 82 83 91".split()
)


def id_number_valid(candidate: str) -> bool:
    """An 18-digit resident ID number: a province code, checksum (GB 11643) and a real birth date."""
    if len(candidate) != 18 or not candidate[:17].isdigit() or candidate[:2] not in _PROVINCES:
        return False
    total = sum(int(d) * w for d, w in zip(candidate[:17], _ID_WEIGHTS))
    if _ID_CHECK[total % 11] != candidate[17].upper():
        return False
    return _id_date_ok(int(candidate[6:10]), int(candidate[10:12]), int(candidate[12:14]))


def _id_shape(candidate: str) -> bool:
    """An ID number's shape without its check digit: 18 (or the old 15) characters with a real birth date."""
    if len(candidate) == 18 and candidate[:17].isdigit() and candidate[0] != "0":
        return _id_date_ok(int(candidate[6:10]), int(candidate[10:12]), int(candidate[12:14]))
    if len(candidate) == 15 and candidate.isdigit() and candidate[0] != "0":
        return _id_date_ok(1900 + int(candidate[6:8]), int(candidate[8:10]), int(candidate[10:12]))
    return False


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


def _card_network(digits: str) -> bool:
    """Issuer prefix and length of a payment card (ISO/IEC 7812 ranges of the networks seen in China).

    UnionPay 62, domestic 60/9x, Visa 4, Mastercard 51–55 and 2221–2720: 16–19 digits; Amex 34/37: 15;
    JCB 35: 16–19; Diners 30/36/38/39: 14–16. Bare 13–15-digit numbers are mostly barcodes (EAN-13 69…),
    IMEIs and tracking numbers.
    """
    n, head, two = len(digits), digits[0], digits[:2]
    if head in "4569":
        return 16 <= n <= 19
    if two in ("34", "37"):
        return n == 15
    if two == "35":
        return 16 <= n <= 19
    if two in ("30", "36", "38", "39"):
        return 14 <= n <= 16
    return head == "2" and 2221 <= int(digits[:4]) <= 2720 and n == 16


def _blocky(sizes: list[int]) -> bool:
    """Groups as people write long numbers: every group but the last has at least three digits."""
    return all(size >= 3 for size in sizes[:-1])


def _area_code(domestic: str) -> str | None:
    """The mainland area code a number starting with 0 begins with: 010, 02x or 0[3-9]xx."""
    if len(domestic) < 4 or domestic[0] != "0":
        return None
    if domestic[1] == "1":
        return "010" if domestic[:3] == "010" else None
    if domestic[1] == "2":
        return domestic[:3]
    if domestic[1] in "3456789":
        return domestic[:4]
    return None


def _is_date(digits: str, sizes: list[int]) -> bool:
    """2026-11-16, 2026.11.16, 2026-11-16 10, 20261116, 202611161030: not anyone's number."""
    if len(sizes) >= 3 and sizes[0] == 4 and all(size <= 2 for size in sizes[1:]):
        year, month, day = int(digits[:4]), int(digits[4 : 4 + sizes[1]]), int(digits[4 + sizes[1] :])
    elif len(sizes) == 1 and len(digits) in (8, 10, 12, 14):
        year, month, day = int(digits[:4]), int(digits[4:6]), int(digits[6:8])
    else:
        return False
    return 1900 <= year <= 2100 and _id_date_ok(year, month, day)


@dataclass
class _Segment:
    groups: list[_Group]
    plus: bool  # '+' before the first group
    x: bool  # an ID's trailing X right after the last group
    label: str | None
    code_prefix: bool  # two or more capital letters right before the run (SF…, JD…, YT…: tracking numbers)
    amount: bool  # a currency sign before or a unit after
    # The segment is the whole run, a single group, or set apart by a different separator than its own:
    # "6200 0000 0000 0013 0" is one 17-digit number, not a card and a 0.
    set_apart: bool = True
    time_after: bool = False  # ":30" follows: the last group is an hour ("2026-11-16 10:30")

    @property
    def digits(self) -> str:
        return "".join(g.digits for g in self.groups)

    @property
    def sizes(self) -> list[int]:
        return [len(g.digits) for g in self.groups]


def _country_code(seg: _Segment) -> tuple[str | None, list[_Group]]:
    """Split a leading country code: returns (code, remaining groups), code None when there is none."""
    groups = seg.groups
    first = groups[0]
    if seg.plus:
        # "+86 138…", "+8613812345678", "(+86) 10 …"; any other "+<code>" is a foreign number
        if not first.digits.startswith("86"):
            return "other", groups
        rest = first.digits[2:]
        return "86", ([_Group(first.start + 2, first.end, rest, False, "")] if rest else []) + groups[1:]
    if len(groups) > 1 and first.digits in ("86", "0086"):
        return "86", groups[1:]  # "(86)138…", "0086 138…", "86-10-6552 9988"
    if len(groups) == 1 and len(first.digits) in (13, 15) and re.match(r"(?:0086|86)1[3-9]", first.digits) and seg.label != "other":
        # "8613812345678": without a '+' or a gap only when nothing says it is an order number
        cut = len(first.digits) - 11
        return "86", [_Group(first.start + cut, first.end, first.digits[cut:], False, "")]
    return None, groups


_MOBILE_GROUPINGS = ([11], [3, 4, 4], [3, 8], [7, 4])


def _mobile(groups: list[_Group], set_apart: bool = True) -> bool:
    """1[3-9] + 9 digits; inside a longer run only in the usual 3-4-4 grouping or set apart by its own separator."""
    digits = "".join(g.digits for g in groups)
    sizes = [len(g.digits) for g in groups]
    if not re.fullmatch(r"1[3-9]\d{9}", digits):
        return False
    return sizes in _MOBILE_GROUPINGS or (set_apart and all(size >= 3 for size in sizes))


def _landline(groups: list[_Group], labelled: bool, international: bool, glued: bool = False) -> bool:
    """Area code + 7–8-digit local number; unlabelled ones need their area code written apart (or no gaps at all)."""
    if groups and groups[0].paren and groups[0].digits == "0" and len(groups) > 1:
        groups = groups[1:]  # "+86 (0)10 …"
    digits = "".join(g.digits for g in groups)
    if international and not digits.startswith("0"):
        digits = "0" + digits
        first = "0" + groups[0].digits
    else:
        first = groups[0].digits if groups else ""
    area = _area_code(digits)
    if area is None or not 7 <= len(digits) - len(area) <= 8:
        return False
    local = digits[len(area)]
    if labelled:
        return True
    if len(groups) == 1:
        return local in "23456789" and not glued
    return first == area and local != "0" and all(len(g.digits) >= 3 for g in groups[1:])


def _classify(seg: _Segment) -> str | None:
    digits, sizes, label = seg.digits, seg.sizes, seg.label
    # ID numbers: checksum and birth date; with an ID label, the shape and birth date are enough.
    id_candidate = digits + ("X" if seg.x else "")
    if _blocky(sizes) and len(id_candidate) == 18 and id_number_valid(id_candidate):
        return "id_number"
    if label == "id" and _id_shape(id_candidate):
        return "id_number"
    code, rest = _country_code(seg)
    if code == "86" and rest and _mobile(rest):
        return "phone"
    if _mobile(seg.groups, seg.set_apart):
        return "phone"
    if seg.amount and label not in ("phone", "im", "card", "id") and digits[0] != "0" and not seg.plus:
        return None  # ¥…, …元, …%: an amount (amounts never start with 0; a label, an ID or a mobile outweighs it)
    if code == "86" and rest:
        if label != "other" and _landline(rest, label in ("phone", "im"), international=True):
            return "landline"
    elif code == "other" and 10 <= len(digits) <= 15:
        return "phone"  # any other +<country code> number (Hong Kong, Taiwan, abroad)
    if label != "other" and seg.set_apart and _landline(seg.groups, label in ("phone", "im"), False, seg.code_prefix):
        return "landline"
    if label == "card" and 12 <= len(digits) <= 19 and _blocky(sizes):
        return "bank_card"
    if (
        label != "other" and not seg.code_prefix and not seg.x and seg.set_apart and 13 <= len(digits) <= 19
        and _blocky(sizes) and _card_network(digits) and luhn_valid(digits)
    ):
        return "bank_card"
    if label == "im" and 5 <= len(digits) <= 12 and len(seg.groups) <= 3:
        return "im_account"
    if label == "phone" and not (_is_date(digits, sizes) or seg.time_after or _SERVICE.match(digits) or _decimal(seg)):
        if 7 <= len(digits) <= 8:
            return "landline"  # a local number without its area code
        if 9 <= len(digits) <= 12:
            return "phone" if digits[0] == "1" else "landline"
    return None


def _set_apart(groups: list[_Group], i: int, j: int) -> bool:
    inner = {g.sep.strip() or " " for g in groups[i + 1 : j + 1]}
    if not inner:
        return True
    outer = set()
    if i > 0:
        outer.add(groups[i].sep.strip() or " ")
    if j + 1 < len(groups):
        outer.add(groups[j + 1].sep.strip() or " ")
    return not (inner & outer)


def _decimal(seg: _Segment) -> bool:
    """1380.00: an amount, not a phone number."""
    return len(seg.groups) == 2 and seg.groups[1].sep.strip() == "." and len(seg.groups[1].digits) <= 2


def _number_spans(text: str, folded: str, luhn_cards: bool = True) -> list[_Span]:
    spans: list[_Span] = []
    previous: tuple[int, str | None] | None = None  # end and label of the last redacted number
    for run in _RUN.finditer(folded):
        start = run.start()
        plus = folded[start] == "+"
        groups: list[_Group] = []
        last_end = start + (1 if plus else 0)
        for g in _GROUP_IN_RUN.finditer(folded, last_end, run.end()):
            if g.group(3) is not None:
                digits, paren = g.group(3), False
            else:
                digits, paren = g.group(2), True
                plus = plus or (g.group(1) == "+" and not groups)
            groups.append(_Group(g.start(), g.end(), digits, paren, folded[last_end : g.start()]))
            last_end = g.end()
        if not groups:
            continue
        end = run.end()
        x = end < len(folded) and folded[end] in "Xx"
        before = folded[max(0, start - _WINDOW) : start]
        label = _label(before)
        if label is None and previous is not None and previous[1] and _LIST_GAP.match(folded[previous[0] : start]):
            label = previous[1]  # "电话 010-12345678、010-87654321"
        code_prefix = bool(_CODE_PREFIX.search(folded, max(0, start - 8), start))
        currency = bool(_CURRENCY_BEFORE.search(before))
        time_after = bool(_TIME_AFTER.match(folded, end))
        unit = bool(_UNIT_AFTER.match(folded[end : end + 6]))
        small = [len(g.digits) < 2 and not (g.paren and g.digits == "0") for g in groups]
        i = 0
        run_label = label
        while i < len(groups):
            found = False
            # No number of interest is longer than 22 digits or 20 groups: bounds the work on long runs.
            last, total = i, 0
            while last < len(groups) and last - i < 20 and total + len(groups[last].digits) <= 22:
                total += len(groups[last].digits)
                last += 1
            for j in range(max(last - 1, i), i - 1, -1):
                at_start, at_end = i == 0, j == len(groups) - 1
                labelled = at_start and run_label is not None
                if not labelled and any(small[i + 2 : j]):
                    continue  # single digits between groups: only a labelled number is written "1 3 8 …"
                seg = _Segment(
                    groups[i : j + 1],
                    plus and at_start,
                    x and at_end,
                    run_label if at_start else None,
                    code_prefix and at_start,
                    ((currency and at_start) or (unit and at_end)) and sum(len(g.digits) for g in groups[i : j + 1]) <= 12,
                    _set_apart(groups, i, j),
                    at_end and time_after,
                )
                kind = _classify(seg)
                if kind is None or (kind == "bank_card" and not luhn_cards and seg.label != "card"):
                    continue
                span_start = start if at_start else groups[i].start
                span_end = groups[j].end + (1 if seg.x and kind == "id_number" else 0)
                if kind == "landline":
                    if not at_end and j + 1 == len(groups) - 1 and groups[j + 1].sep.strip() == "-" and len(groups[j + 1].digits) <= 5:
                        span_end, j = groups[j + 1].end, j + 1  # 010-65529988-123: the extension goes too
                    elif j == len(groups) - 1:
                        extension = _EXTENSION.match(folded, span_end)
                        if extension:
                            span_end = extension.end()
                spans.append(_Span(span_start, span_end, kind))
                previous = (span_end, seg.label)
                # A list of numbers after one label: "电话 13812345678 6552 9988".
                run_label = seg.label
                i, found = j + 1, True
                break
            if not found:
                i += 1
                run_label = None
    return spans


# --- redaction ----------------------------------------------------------------------------------


@dataclass
class Redaction:
    text: str
    counts: dict[str, int] = field(default_factory=dict)


def _apply(text: str, spans: list[_Span], counts: Counter[str]) -> str:
    out, last = [], 0
    for span in sorted(spans, key=lambda s: s.start):
        if span.start < last:
            continue
        out.append(text[last : span.start])
        out.append(PLACEHOLDERS[span.kind])
        counts[span.kind] += 1
        last = span.end
    out.append(text[last:])
    return "".join(out)


def redact(text: str, *, luhn_cards: bool = True) -> Redaction:
    """Replace every recognised PII item by its placeholder; count them by type.

    ``luhn_cards=False`` keeps card-like numbers that only pass Luhn (for identifiers and links).
    """
    counts: Counter[str] = Counter()
    if not text:
        return Redaction(text, {})
    # 1. e-mail addresses (their local parts hold digits that are not phone numbers).
    folded = text.translate(_FOLD)
    lowered = folded.lower()
    spans = []
    if "@" in folded or "#" in folded or "at)" in lowered or "at]" in lowered:
        spans = [_Span(m.start(), m.end(), "email") for m in _EMAIL.finditer(folded) if _email_ok(m)]
    if spans:
        text = _apply(text, spans, counts)
        folded = text.translate(_FOLD)
        lowered = folded.lower()
    # 2. WeChat ids after a WeChat label.
    spans = []
    if _WECHAT_HINT.search(lowered):
        spans = [
            _Span(m.start("wxid") if m.group("wxid") else m.start("id"), m.end(), "im_account")
            for m in _WECHAT_ID.finditer(folded)
            if _wechat_id(m, folded[: m.start()])
        ]
    if spans:
        text = _apply(text, spans, counts)
        folded = text.translate(_FOLD)
    # 3. numbers.
    if any(c.isdigit() for c in folded):
        spans = _number_spans(text, folded, luhn_cards)
        if spans:
            text = _apply(text, spans, counts)
    return Redaction(text, dict(counts))


def redact_value(value: object, counts: Counter[str]) -> object:
    """Redact strings anywhere inside JSON-like data — dict keys as well as values — adding to ``counts``.

    Two keys that become the same placeholder are kept apart: ``[手机号]``, ``[手机号]#2``.
    """
    if isinstance(value, str):
        result = redact(value)
        counts.update(result.counts)
        return result.text
    if isinstance(value, dict):
        redacted: dict[object, object] = {}
        for key, item in value.items():
            new_key = redact_value(key, counts) if isinstance(key, str) else key
            if new_key in redacted:
                n = 2
                while f"{new_key}#{n}" in redacted:
                    n += 1
                new_key = f"{new_key}#{n}"
            redacted[new_key] = redact_value(item, counts)
        return redacted
    if isinstance(value, (list, tuple)):
        return [redact_value(item, counts) for item in value]
    return value


def redact_identifier(value: str, counts: Counter[str]) -> str:
    """A platform identifier or link (post id, post URL): redacted, except numbers whose only evidence is Luhn.

    Post and status ids are long digit strings that pass Luhn by chance; a phone number, e-mail
    address or ID number inside one is still caught.
    """
    result = redact(value, luhn_cards=False)
    counts.update(result.counts)
    return result.text


# --- pseudonymous customer ids ------------------------------------------------------------------

PSEUDONYM_PREFIX = "pid_"


def _canonical_contact(value: str) -> str | None:
    """The canonical form of a customer id that is an e-mail address or a phone number, else None."""
    text = value.strip().translate(_FOLD)
    if _EMAIL.fullmatch(text):
        return "email:" + text.lower()
    digits = re.sub(r"[\s().-]", "", text)
    mobile = re.fullmatch(r"(?:\+86|0086|86)?(1[3-9]\d{9})", digits)
    if mobile:
        return "phone:" + mobile.group(1)
    if re.fullmatch(r"\+\d{8,15}", digits):
        return "phone:" + digits
    return None


def pseudonymise(customer_id: str, key: bytes | str) -> str:
    """A stable keyed pseudonym (HMAC-SHA256) for a customer id that is contact data; other ids unchanged.

    An id is replaced when it is an e-mail address or a phone number (spelling variants of one
    address or number give one pseudonym: case, ``+86``, separators) or when redaction finds any
    personal data in it. Ids that already are pseudonyms, and opaque ids such as ``c1001``, stay.
    """
    if customer_id.startswith(PSEUDONYM_PREFIX):
        return customer_id
    canonical = _canonical_contact(customer_id)
    if canonical is None:
        if not redact(customer_id).counts:
            return customer_id
        canonical = "id:" + customer_id.strip()
    secret = key.encode("utf-8") if isinstance(key, str) else key
    digest = hmac.new(secret, b"feedback-miner/customer-id\x00" + canonical.encode("utf-8"), hashlib.sha256).hexdigest()
    return PSEUDONYM_PREFIX + digest[:32]
