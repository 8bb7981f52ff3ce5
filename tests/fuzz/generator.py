"""A seeded generator of raw feedback messages, valid and poisonous, for the fuzz suite (issue 17).

``generate(seed, count)`` returns the same cases for the same arguments, in any process
(only ``random.Random(seed)``; nothing depends on hash randomisation or the clock).

Every case is what a producer could put on ``feedback.raw``: value bytes (or ``None``,
a tombstone), key and headers. It says which outcomes are right for it (``expect``:
``"normalized"`` and/or dead-letter reason codes) and which personal data was planted in
it (``planted``: mobile numbers, ID numbers, bank cards and e-mail addresses written as
digits or lower case), so that a test can check that none of them comes out again.

Valid events of the three channels (app reviews, social posts, e-mails as plain fields or
as base64 MIME in UTF-8/GBK/GB18030/Big5) are the base; mutations then break them in the
ways integrations and attackers do: wrong types, missing and extra fields, nulls, lone
surrogates, deep nesting, huge numbers, NaN/Infinity, dates out of range, odd channels,
bytes that are not UTF-8, truncated JSON, JSON that is not an object, oversized values,
tombstones, unknown schema versions, random Unicode and HTML entities.
"""

from __future__ import annotations

import base64
import json
import quopri
import random
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

DEFAULT_SEED = 20261206
DEFAULT_CASES = 10_000
MAX_EVENT_BYTES = 256 * 1024  # RuntimeSettings.max_event_bytes, the stage's default
NORMALIZED = "normalized"


@dataclass(frozen=True)
class Case:
    index: int
    kind: str
    value: bytes | None
    key: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    expect: frozenset[str]
    planted: tuple[str, ...] = ()
    # Single events that the ingest endpoint can be compared with the stage on (no BOM, no header tricks).
    ingest_comparable: bool = True

    @property
    def trace_id(self) -> str:
        return dict(self.headers)["trace_id"].decode()

    def describe(self, limit: int = 300) -> str:
        shown = repr(self.value[:limit]) + ("…" if self.value is not None and len(self.value) > limit else "") if self.value is not None else "None (tombstone)"
        extra = {k: v for k, v in self.headers if k != "trace_id"}
        return f"case {self.index} [{self.kind}] expect={sorted(self.expect)} headers={extra} value={shown}"


# --- personal data ------------------------------------------------------------------------------

_MOBILE_PREFIXES = [f"13{d}" for d in range(10)] + ["145", "147", "150", "151", "152", "153", "155", "156", "157", "158", "159",
                                                    "166", "170", "173", "175", "176", "177", "178", "180", "181", "182", "183",
                                                    "184", "185", "186", "187", "188", "189", "191", "195", "198", "199"]
_PROVINCES = "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 61 62 63 64 65".split()
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_MAIL_NAMES = ["zhangwei", "wang.fang", "li_na", "liuyang", "chen.jing", "yangli", "zhaolei", "huang_min", "zhou.jie", "wu.xia", "xu.qiang", "sun_li"]
_MAIL_DOMAINS = ["qq.com", "163.com", "126.com", "gmail.com", "sina.cn", "foxmail.com", "outlook.com", "example.com.cn", "hotmail.com", "yeah.net"]
_FULL_WIDTH = str.maketrans({str(d): chr(0xFF10 + d) for d in range(10)})
_ZERO_WIDTH = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"]


def _luhn_digit(body: str) -> str:
    total = 0
    for position, char in enumerate(reversed(body)):
        value = int(char)
        if position % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


class Pii:
    """Valid personal data: mainland mobiles, resident ID numbers (GB 11643), Luhn cards, e-mail addresses."""

    def __init__(self, rng: random.Random):
        self.rng = rng

    def mobile(self) -> str:
        return self.rng.choice(_MOBILE_PREFIXES) + "".join(self.rng.choice(string.digits) for _ in range(8))

    def id_number(self) -> str:
        rng = self.rng
        born = date(1950, 1, 1) + timedelta(days=rng.randrange(365 * 55))
        body = rng.choice(_PROVINCES) + f"{rng.randrange(1, 100):02d}{rng.randrange(1, 100):02d}" + born.strftime("%Y%m%d") + f"{rng.randrange(1000):03d}"
        return body + _ID_CHECK[sum(int(d) * w for d, w in zip(body, _ID_WEIGHTS)) % 11]

    def bank_card(self) -> str:
        rng = self.rng
        prefix, length = rng.choice([("62", 16), ("62", 19), ("622848", 19), ("621700", 19), ("4", 16), ("5" + rng.choice("12345"), 16)])
        body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
        return body + _luhn_digit(body)

    def email(self) -> str:
        rng = self.rng
        local = rng.choice(_MAIL_NAMES) + (str(rng.randrange(1, 9999)) if rng.random() < 0.7 else "")
        address = f"{local}@{rng.choice(_MAIL_DOMAINS)}"
        return address.title() if rng.random() < 0.15 else address

    # How people write them.

    def written_mobile(self, number: str, cleaned_field: bool) -> str:
        styles = [
            lambda n: n,
            lambda n: f"{n[:3]} {n[3:7]} {n[7:]}",
            lambda n: f"{n[:3]}-{n[3:7]}-{n[7:]}",
            lambda n: f"+86 {n}",
            lambda n: f"+86-{n[:3]}-{n[3:7]}-{n[7:]}",
            lambda n: f"(+86){n}",
            lambda n: f"0086 {n}",
            lambda n: n.translate(_FULL_WIDTH),
        ]
        if cleaned_field:  # controls and zero-width characters are stripped before redaction in texts
            styles.append(lambda n: self.rng.choice(_ZERO_WIDTH).join([n[:3], n[3:7], n[7:]]))
        return self.rng.choice(styles)(number)

    def written_id(self, number: str) -> str:
        number = number.lower() if number.endswith("X") and self.rng.random() < 0.3 else number
        return self.rng.choice([number, number, f"{number[:6]} {number[6:14]} {number[14:]}"])

    def written_card(self, number: str) -> str:
        if self.rng.random() < 0.5:
            return number
        sep = self.rng.choice([" ", " ", "-"])
        return sep.join(number[i : i + 4] for i in range(0, len(number), 4))


def planted_form(kind: str, value: str) -> str:
    """What must not appear in any output: the digits (ID numbers: with their check character), the address in lower case."""
    return value.lower() if kind in ("email", "id_number") else "".join(c for c in value if c.isdigit())


# --- Chinese feedback ---------------------------------------------------------------------------

_COMPLAINTS = [
    "外卖送了一个半小时才到，饭菜全凉了", "快递三天没更新物流信息", "收到的手机屏幕有划痕", "客服态度很差，问了三次都没人回",
    "退款申请提交一周了还没到账", "app一打开就闪退，重装也没用", "会员被自动续费了，我根本没开通", "价格比页面上显示的贵了二十块",
    "骑手把餐放在门口没打电话", "商品和描述严重不符", "登录总是提示验证码错误", "隐私设置改不了，总收到骚扰电话",
    "希望能增加夜间模式", "这次配送很快，小哥态度也好，点赞", "发票开错了抬头，要求重开", "优惠券用不了，结算时提示已过期",
    "空调装好第二天就不制冷了", "酒店房间有异味，前台不给换房", "支付成功了订单却显示未付款", "包裹被签收了但我根本没收到",
]
_TRADITIONAL = ["退款兩週了還沒到賬", "客服態度很差，電話一直打不通", "螢幕有壞點，申請退貨", "這個應用程式常常當機", "物流資訊三天沒更新"]
_FILLERS = ["真的很失望", "请尽快处理", "麻烦给个说法", "已经投诉过一次了", "太差了", "谢谢", "希望改进", "！！！", "😡😡", "[怒]", "🙏"]
_PII_PHRASES = {
    "mobile": ["联系电话：{}", "我的手机{}", "手机号 {}", "请打 {} 找我", "电话{}", "有问题打{}", "{}", "回电 {}", "tel: {}"],
    "id_number": ["身份证号{}", "身份证：{}", "证件号码 {}", "{}", "实名信息 {}"],
    "bank_card": ["卡号{}", "银行卡 {}", "退到我的卡 {} 上", "{}", "信用卡{}"],
    "email": ["邮箱{}", "发到 {} 吧", "联系邮箱：{}", "{}", "email: {}"],
}
_MENTIONS = ["@小明", "@美团外卖", "@淘宝客服", "@消费者之声", "@京东"]
_TOPICS = ["#外卖超时#", "#315投诉#", "#退款难#", "#手机质量#"]
_OS = ["iOS 18.1", "Android 14", "HarmonyOS 4.2", "iPadOS 17", "MIUI 14"]
_DEVICES = ["iPhone 15 Pro", "Mate 60", "Xiaomi 14", "OPPO Find X7", "vivo X100"]
_STORES = ["App Store", "华为应用市场", "小米应用商店", "应用宝"]
_PLATFORMS = ["weibo", "douyin", "xiaohongshu", "zhihu", "wechat"]
_SOURCES = ["app-store-connector", "in-app-feedback", "weibo-listener", "mail-gateway", "crm-export"]
_TIERS = [None, "vip", "gold", "normal", "svip"]


class Builder:
    """Valid raw events of the three channels, with personal data planted in their free-text fields."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.pii = Pii(rng)
        self.planted: list[str] = []

    # personal data in a field; ``cleaned``: the field goes through NFKC and control stripping
    def _plant(self, kind: str | None = None, cleaned: bool = True, phrase: bool = True) -> str:
        rng, pii = self.rng, self.pii
        kind = kind or rng.choice(["mobile", "mobile", "id_number", "bank_card", "email"])
        if kind == "mobile":
            value = pii.mobile()
            written = pii.written_mobile(value, cleaned)
        elif kind == "id_number":
            value = pii.id_number()
            written = pii.written_id(value)
        elif kind == "bank_card":
            value = pii.bank_card()
            written = pii.written_card(value)
        else:
            value = pii.email()
            written = value
        self.planted.append(planted_form("email" if kind == "email" else kind, value))
        return rng.choice(_PII_PHRASES[kind]).format(written) if phrase else written

    def sentence(self, pii_rate: float = 0.5, traditional: float = 0.15) -> str:
        rng = self.rng
        parts = [rng.choice(_TRADITIONAL if rng.random() < traditional else _COMPLAINTS)]
        for _ in range(rng.randrange(0, 3)):
            parts.append(rng.choice(_COMPLAINTS + _FILLERS))
        while rng.random() < pii_rate:
            parts.insert(rng.randrange(1, len(parts) + 1), self._plant())
            pii_rate /= 2
        return "，".join(parts) + rng.choice(["。", "！", "", "?"])

    def customer(self) -> dict[str, Any]:
        rng = self.rng
        roll = rng.random()
        if roll < 0.08:
            cid = self._plant("email", cleaned=False, phrase=False)
        elif roll < 0.16:
            cid = self._plant("mobile", cleaned=False, phrase=False)
        else:
            cid = f"c{rng.randrange(1, 400)}"
        customer: dict[str, Any] = {"id": cid}
        tier = rng.choice(_TIERS)
        if tier is not None:
            customer["tier"] = tier
        return customer

    def metadata(self) -> dict[str, Any]:
        rng = self.rng
        meta: dict[str, Any] = {}
        for n in range(rng.randrange(0, 4)):
            roll = rng.random()
            if roll < 0.25:
                meta[rng.choice(["联系方式", "contact", "备注", "note", "user_input"]) + str(n)] = self._plant(cleaned=False, phrase=rng.random() < 0.5)
            elif roll < 0.35:
                meta[self._plant(cleaned=False, phrase=False)] = rng.choice(["已核实", True, 1, None])  # personal data as a key
            elif roll < 0.45:
                meta[f"nested{n}"] = {"form": [{"field": "phone", "value": self._plant("mobile", cleaned=False, phrase=False)}], "ok": True}
            elif roll < 0.6:
                meta["order_id"] = f"DD{rng.randrange(10**11, 10**12)}"
            elif roll < 0.75:
                meta["score"] = rng.choice([0, 1, -1, 3.5, 10**20, 1e-9, None, True])
            else:
                meta["tags"] = rng.sample(["urgent", "退款", "物流", "vip", "repeat"], 2)
        return meta

    def base(self, channel: str, payload: dict[str, Any]) -> dict[str, Any]:
        rng = self.rng
        event: dict[str, Any] = {
            "event_id": "",  # filled in by the generator (one per case)
            "channel": channel,
            "source": rng.choice(_SOURCES),
            "received_at": f"2026-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}{rng.choice(['+08:00', 'Z', '+00:00', '-05:00', '+05:45'])}",
            "customer": self.customer(),
            "payload": payload,
        }
        if rng.random() < 0.7:
            event["metadata"] = self.metadata()
        if rng.random() < 0.3:
            payload["kind"] = channel  # integrators may repeat the channel in the payload
        return event

    def app(self) -> dict[str, Any]:
        rng = self.rng
        payload: dict[str, Any] = {"text": self.sentence()}
        if rng.random() < 0.8:
            payload["rating"] = rng.randrange(1, 6)
        if rng.random() < 0.6:
            payload["app_version"] = f"{rng.randrange(1, 10)}.{rng.randrange(10)}.{rng.randrange(10)}"
        if rng.random() < 0.6:
            payload["os"] = rng.choice(_OS)
        if rng.random() < 0.6:
            device = rng.choice(_DEVICES)
            payload["device"] = f"{device}（{self._plant(rng.choice(['mobile', 'email']), cleaned=False, phrase=False)}）" if rng.random() < 0.3 else device
        if rng.random() < 0.3:
            payload["store"] = rng.choice(_STORES)
        return self.base("app", payload)

    def social(self) -> dict[str, Any]:
        rng = self.rng
        repost = rng.random() < 0.25
        # A repost: the author's own words (perhaps only Weibo's filler), then //@user: the reposted text.
        text = rng.choice(["转发微博", "同样遇到了", ""]) if repost and rng.random() < 0.4 else self.sentence()
        if rng.random() < 0.4:
            text = f"{rng.choice(_MENTIONS)} {text}"
        if rng.random() < 0.3:
            text = f"{rng.choice(_TOPICS)}{text}"
        if rng.random() < 0.2:
            text += " https://t.cn/A6" + "".join(rng.choice(string.ascii_letters) for _ in range(6))
        if repost:
            author = self._plant("email", cleaned=False, phrase=False) if rng.random() < 0.3 else rng.choice(["消费者之声", "小明", "老王"])
            text = f"{text}//@{author}:{self.sentence()}"
        payload: dict[str, Any] = {"text": text, "platform": rng.choice(_PLATFORMS)}
        if rng.random() < 0.6:
            payload["post_id"] = str(rng.randrange(10**15, 10**16))
        if rng.random() < 0.5:
            payload["author"] = self._plant(rng.choice(["mobile", "email"]), cleaned=False, phrase=False) if rng.random() < 0.4 else rng.choice(["吃货小王", "user_8812", "匿名用户"])
        if rng.random() < 0.4:
            tail = self._plant("mobile", cleaned=False, phrase=False) if rng.random() < 0.3 else str(rng.randrange(10**8, 10**9))
            payload["url"] = f"https://weibo.com/u/{tail}"
        if rng.random() < 0.5:
            payload["reposts"] = rng.randrange(0, 5000)
        if rng.random() < 0.5:
            payload["likes"] = rng.randrange(0, 50000)
        return self.base("social", payload)

    def email_plain(self) -> dict[str, Any]:
        rng = self.rng
        payload: dict[str, Any] = {}
        if rng.random() < 0.8:
            payload["subject"] = rng.choice(["投诉：", "Re: ", "关于订单的问题 ", ""]) + self.sentence(pii_rate=0.2)
        if rng.random() < 0.3:
            payload["body"] = "<html><body><p>" + self.sentence() + "</p><blockquote>您好，请提供订单号。</blockquote><p>&nbsp;谢谢&amp;祝好</p></body></html>"
        elif rng.random() < 0.95 or "subject" not in payload:
            payload["body"] = self.sentence() + "\n\n发自我的iPhone\n\n-----原始邮件-----\n发件人: 客服 <service@shop.example.cn>\n主题: 回复\n\n请提供订单号。"
        if rng.random() < 0.7:
            payload["sender"] = self._plant("email", cleaned=False, phrase=False)
        return self.base("email", payload)

    def email_mime(self) -> dict[str, Any]:
        rng = self.rng
        charset = rng.choice(["utf-8", "gbk", "gb2312", "gb18030", "big5"])
        traditional = charset == "big5"
        body = self.sentence(traditional=1.0 if traditional else 0.0)
        subject = self.sentence(pii_rate=0.2, traditional=1.0 if traditional else 0.0)
        # What the charset cannot write is left out (emoji in GBK); GBK characters labelled gb2312 are a known case.
        body, subject = _encodable(body, charset), _encodable(subject, charset)
        sender = self._plant("email", cleaned=False, phrase=False)
        raw = _mime_message(rng, charset, subject, body, sender)
        payload = {"mime_base64": base64.b64encode(raw).decode("ascii")}
        if rng.random() < 0.3:
            payload["sender"] = sender
        return self.base("email", payload)


def _encodable(text: str, charset: str) -> str:
    codec = {"gb2312": "gbk"}.get(charset, charset)
    return text.encode(codec, "ignore").decode(codec)


def _rfc2047(text: str, charset: str, mode: str) -> str:
    """RFC 2047 encoded words, each under 76 characters and whole characters only, folded onto lines."""
    codec = {"gb2312": "gbk"}.get(charset, charset)

    def word(chunk: str) -> str:
        data = chunk.encode(codec)
        if mode == "B":
            return f"=?{charset}?B?{base64.b64encode(data).decode()}?="
        encoded = "".join(chr(b) if chr(b).isalnum() and b < 128 else "_" if b == 32 else f"={b:02X}" for b in data)
        return f"=?{charset}?Q?{encoded}?="

    words, chunk = [], ""
    for char in text:
        if chunk and len(word(chunk + char)) > 75:
            words.append(word(chunk))
            chunk = ""
        chunk += char
    if chunk:
        words.append(word(chunk))
    return "\r\n ".join(words)


def _b64_lines(data: bytes) -> bytes:
    encoded = base64.b64encode(data)
    return b"\r\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))


def _mime_message(rng: random.Random, charset: str, subject: str, body: str, sender: str) -> bytes:
    codec = {"gb2312": "gbk"}.get(charset, charset)
    encoding = rng.choice(["base64", "quoted-printable", "8bit"])
    trailer = "發自我的手機" if charset == "big5" else "发自我的手机"
    data = (body + f"\r\n\r\n{trailer}\r\n").encode(codec)
    if encoding == "base64":
        content = _b64_lines(data)
    elif encoding == "quoted-printable":
        content = quopri.encodestring(data)
    else:
        content = data
    html = rng.random() < 0.25
    head = (
        f"From: {sender}\r\nTo: service@shop.example.cn\r\nSubject: {_rfc2047(subject, charset, rng.choice('BQ'))}\r\n"
        f"Date: Mon, 16 Nov 2026 09:30:00 +0800\r\nMessage-ID: <fz{rng.randrange(10**9)}@example.com>\r\nMIME-Version: 1.0\r\n"
    ).encode("ascii")
    part_type = "text/html" if html else "text/plain"
    if html:
        data = f"<html><body><p>{body}</p></body></html>".encode(codec)
        content = _b64_lines(data) if encoding == "base64" else quopri.encodestring(data) if encoding == "quoted-printable" else data
    part_head = f"Content-Type: {part_type}; charset=\"{charset}\"\r\nContent-Transfer-Encoding: {encoding}\r\n".encode("ascii")
    if rng.random() < 0.3:
        boundary = f"b{rng.randrange(10**8)}"
        return (
            head + f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n--{boundary}\r\n'.encode()
            + part_head + b"\r\n" + content + f"\r\n--{boundary}\r\n".encode()
            + b'Content-Type: application/pdf; name="a.pdf"\r\nContent-Disposition: attachment; filename="a.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
            + _b64_lines(b"%PDF-1.4 not really") + f"\r\n--{boundary}--\r\n".encode()
        )
    return head + part_head + b"\r\n" + content + b"\r\n"


# --- serialisation ------------------------------------------------------------------------------

_LITERAL = "\x00lit{}\x00"


def dumps(rng: random.Random, event: Any, literals: dict[str, str] | None = None, ascii_only: bool | None = None) -> bytes:
    """JSON bytes, formatted one of several ways; ``literals`` replaces placeholder strings by raw JSON text."""
    if ascii_only is None:
        ascii_only = rng.random() < 0.4
    separators = rng.choice([(", ", ": "), (",", ":"), (" ,", " : ")])
    text = json.dumps(event, ensure_ascii=ascii_only, separators=separators, allow_nan=True)
    for placeholder, literal in (literals or {}).items():
        text = text.replace(json.dumps(placeholder), literal)
    return text.encode("utf-8", "surrogatepass") if not ascii_only else text.encode("ascii")


def lit(literals: dict[str, str], raw_json: str) -> str:
    """A placeholder that ``dumps`` replaces by ``raw_json`` (deep nesting, 5,000-digit numbers, NaN)."""
    placeholder = _LITERAL.format(len(literals))
    literals[placeholder] = raw_json
    return placeholder


def nested_json(rng: random.Random, levels: int) -> str:
    """``levels`` nested objects or arrays, written without recursion."""
    style = rng.choice(["object", "array", "mixed"])
    opens, closes = [], []
    for i in range(levels):
        as_array = style == "array" or (style == "mixed" and i % 2)
        opens.append("[" if as_array else '{"k":')
        closes.append("]" if as_array else "}")
    return "".join(opens) + rng.choice(["1", '"x"', "null", "0"]) + "".join(reversed(closes))


# --- the generator ------------------------------------------------------------------------------

Expect = frozenset
SCHEMA_INVALID = Expect({"schema_invalid"})
OK = Expect({NORMALIZED})


@dataclass
class _Draft:
    kind: str
    value: bytes | None
    expect: frozenset[str]
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    ingest_comparable: bool = True


class Generator:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.seed = seed
        self.builder = Builder(self.rng)
        self.valid_texts: list[tuple[dict[str, Any], list[str]]] = []  # earlier valid app events and their planted data
        self.index = 0

    # a fresh valid event of any channel
    def valid_event(self) -> tuple[str, dict[str, Any]]:
        roll = self.rng.random()
        if roll < 0.35:
            return "app", self.builder.app()
        if roll < 0.65:
            return "social", self.builder.social()
        if roll < 0.82:
            return "email", self.builder.email_plain()
        return "email_mime", self.builder.email_mime()

    def _event(self) -> tuple[str, dict[str, Any]]:
        channel, event = self.valid_event()
        event["event_id"] = f"fz{self.seed}-{self.index:05d}"
        return channel, event

    # --- valid ---

    def valid(self) -> _Draft:
        channel, event = self._event()
        if channel == "app" and len(self.valid_texts) < 200:
            self.valid_texts.append((json.loads(json.dumps(event)), list(self.builder.planted)))
        return _Draft(f"valid/{channel}", dumps(self.rng, event), OK)

    def duplicate(self) -> _Draft:
        if not self.valid_texts:
            return self.valid()
        original, planted = self.rng.choice(self.valid_texts)
        event = json.loads(json.dumps(original))
        self.builder.planted.extend(planted)
        event["event_id"] = f"fz{self.seed}-{self.index:05d}"
        if self.rng.random() < 0.5:
            event["payload"]["text"] += "！"  # a near duplicate
        return _Draft("valid/duplicate", dumps(self.rng, event), OK)

    # --- mutations of the dict ---

    def wrong_type(self) -> _Draft:
        rng = self.rng
        channel, event = self._event()
        payload = event["payload"]
        choices: list[tuple[str, Callable[[], None]]] = [
            ("event_id", lambda: event.__setitem__("event_id", rng.choice([123, [], {}, True, 1.5]))),
            ("source", lambda: event.__setitem__("source", rng.choice([5, [], {"a": 1}, False]))),
            ("received_at", lambda: event.__setitem__("received_at", rng.choice([[], {}, True, "yesterday", "2026-11-16", "2026-11-16T09:00:00", ""]))),
            ("customer", lambda: event.__setitem__("customer", rng.choice(["c1", [], 7, {"id": 5}, {"id": ["c1"]}, {"id": ""}, {"id": "c" * 201}, {"id": "c1", "tier": 3}]))),
            ("payload", lambda: event.__setitem__("payload", rng.choice(["text", [], 0, True]))),
            ("metadata", lambda: event.__setitem__("metadata", rng.choice([[], "x", 5, [["a", 1]]]))),
        ]
        if channel in ("app", "social"):
            choices.append(("payload.text", lambda: payload.__setitem__("text", rng.choice([5, [], {"t": "x"}, "", True]))))
        if channel == "app":
            choices.append(("payload.rating", lambda: payload.__setitem__("rating", rng.choice([0, 6, -1, 2.5, "five", [], 100]))))
            choices.append(("payload.device", lambda: payload.__setitem__("device", rng.choice([1, [], {"m": "x"}]))))
        if channel == "social":
            choices.append(("payload.reposts", lambda: payload.__setitem__("reposts", rng.choice([-1, "many", [], 1.5]))))
            choices.append(("payload.url", lambda: payload.__setitem__("url", rng.choice([1, ["u"], {}]))))
        if channel in ("email", "email_mime"):
            choices.append(("payload.subject", lambda: payload.__setitem__("subject", rng.choice([1, [], {"s": 1}]))))
            choices.append(("payload.mime_base64", lambda: payload.__setitem__("mime_base64", rng.choice(["not base64!", "YWJj*", "abc", 12]))))
        name, apply = rng.choice(choices)
        apply()
        return _Draft(f"wrong_type/{name}", dumps(rng, event), SCHEMA_INVALID)

    def lax_type(self) -> _Draft:
        """Values pydantic's lax mode may coerce: either outcome is right, a crash is not."""
        rng = self.rng
        channel, event = self._event()
        options = [
            ("received_at", lambda: event.__setitem__("received_at", rng.choice([0, 1_700_000_000, 1e11, -62135596800, 253402300799, 10**18, "2026-11-16 09:00:00+08:00", "2026-11-16T09:00:00.123456789+08:00", "2026-W47-1T09:00Z"]))),
            ("customer.tier", lambda: event["customer"].__setitem__("tier", rng.choice(["", " ", "vip\n", "x" * 51]))),
        ]
        if channel == "app":
            options.append(("payload.rating", lambda: event["payload"].__setitem__("rating", rng.choice(["5", "1", 3.0, True, False, " 4 "]))))
        if channel == "social":
            options.append(("payload.likes", lambda: event["payload"].__setitem__("likes", rng.choice(["12", 3.0, True, 10**30]))))
        name, apply = rng.choice(options)
        apply()
        return _Draft(f"lax_type/{name}", dumps(rng, event), Expect({NORMALIZED, "schema_invalid"}))

    def missing(self) -> _Draft:
        rng = self.rng
        channel, event = self._event()
        name = rng.choice(["event_id", "channel", "source", "received_at", "customer", "payload", "metadata", "customer.id", "payload.text", "payload.kind", "email.content"])
        expect = SCHEMA_INVALID
        if name in ("event_id", "metadata", "payload.kind"):
            event.pop(name, None) if "." not in name else event["payload"].pop("kind", None)
            expect = OK  # a default applies
        elif name == "customer.id":
            event["customer"].pop("id")
        elif name == "payload.text":
            if channel in ("email", "email_mime"):
                name, expect = "payload.body", OK if event["payload"].get("subject") or event["payload"].get("mime_base64") else SCHEMA_INVALID
                event["payload"].pop("body", None)
            else:
                event["payload"].pop("text")
        elif name == "email.content":
            event["channel"] = "email"
            event["payload"] = {"sender": "x@example.com"} if rng.random() < 0.5 else {"subject": "", "body": ""}
        else:
            event.pop(name)
        return _Draft(f"missing/{name}", dumps(rng, event), expect)

    def extra(self) -> _Draft:
        rng = self.rng
        channel, event = self._event()
        where = rng.choice(["top", "payload", "customer", "metadata"])
        key = rng.choice(["extra", "Channel", "event-id", "text", "__proto__", "", "é", "优先级"])
        value = rng.choice([1, "x", None, [], {"a": 1}])
        if where == "top":
            if key == "text" or key not in event:
                event[key] = value
            else:
                event["extra"] = value
            expect = SCHEMA_INVALID
        elif where == "payload":
            field_names = {"app": {"kind", "text", "rating", "app_version", "os", "device", "store"},
                           "social": {"kind", "text", "platform", "post_id", "author", "url", "reposts", "likes"},
                           "email": {"kind", "subject", "body", "mime_base64", "sender"}}["email" if channel.startswith("email") else channel]
            key = key if key not in field_names else "unknown"
            event["payload"][key] = value
            expect = SCHEMA_INVALID
        elif where == "customer":
            event["customer"]["phone" if rng.random() < 0.5 else key or "x"] = value
            expect = SCHEMA_INVALID
        else:
            event.setdefault("metadata", {})[key] = value
            expect = OK
        return _Draft(f"extra/{where}", dumps(rng, event), expect)

    def nulls(self) -> _Draft:
        rng = self.rng
        channel, event = self._event()
        required = ["event_id", "channel", "source", "received_at", "customer", "payload", "metadata", "customer.id"]
        optional = ["customer.tier"]
        if channel == "app":
            required.append("payload.text")
            optional += ["payload.rating", "payload.app_version", "payload.os", "payload.device", "payload.store"]
        elif channel == "social":
            required.append("payload.text")
            optional += ["payload.platform", "payload.post_id", "payload.author", "payload.url", "payload.reposts", "payload.likes"]
        else:
            optional += ["payload.sender"]
        name = rng.choice(required + optional)
        target = event
        leaf = name
        if "." in name:
            head, leaf = name.split(".")
            target = event[head]
        target[leaf] = None
        expect = OK if name in optional else SCHEMA_INVALID
        return _Draft(f"null/{name}", dumps(rng, event), expect)

    def surrogate(self) -> _Draft:
        """A lone surrogate in any string or key: as a JSON escape it is schema_invalid, as raw bytes not UTF-8."""
        rng = self.rng
        channel, event = self._event()
        lone = rng.choice(["\ud800", "\udbff", "\udc00", "\udfff", "\ud83d"])
        paths: list[tuple[str, Callable[[], None]]] = [
            ("event_id", lambda: event.__setitem__("event_id", event["event_id"] + lone)),
            ("source", lambda: event.__setitem__("source", lone + event["source"])),
            ("customer.id", lambda: event["customer"].__setitem__("id", event["customer"]["id"] + lone)),
            ("customer.tier", lambda: event["customer"].__setitem__("tier", lone)),
            ("metadata.value", lambda: event.setdefault("metadata", {}).__setitem__("note", f"a{lone}b")),
            ("metadata.key", lambda: event.setdefault("metadata", {}).__setitem__(f"k{lone}", 1)),
            ("metadata.deep", lambda: event.setdefault("metadata", {}).__setitem__("list", [{"x": ["ok", lone]}])),
            ("top.key", lambda: event.__setitem__(lone, 1)),
            ("payload.key", lambda: event["payload"].__setitem__(lone + "x", "y")),
            ("received_at", lambda: event.__setitem__("received_at", event["received_at"] + lone)),
            ("channel", lambda: event.__setitem__("channel", event["channel"] + lone)),
        ]
        for name in ("text", "device", "os", "author", "url", "subject", "body", "sender"):
            if name in event["payload"]:
                paths.append((f"payload.{name}", lambda name=name: event["payload"].__setitem__(name, event["payload"][name][:5] + lone + event["payload"][name][5:])))
        name, apply = rng.choice(paths)
        apply()
        if rng.random() < 0.8:
            return _Draft(f"surrogate/escaped/{name}", dumps(rng, event, ascii_only=True), SCHEMA_INVALID)
        return _Draft(f"surrogate/raw_bytes/{name}", dumps(rng, event, ascii_only=False), Expect({"not_utf8"}))

    def deep(self) -> _Draft:
        rng = self.rng
        channel, event = self._event()
        literals: dict[str, str] = {}
        roll = rng.random()
        if roll < 0.2:
            levels = rng.choice([rng.randrange(33, 100), rng.randrange(100, 1000), rng.randrange(1000, 6000)])
            return _Draft("deep/top_level", nested_json(rng, levels).encode(), Expect({"too_deep"}))
        if roll < 0.3:
            levels = rng.randrange(40, 5000)
            return _Draft("deep/unclosed", ("[" * levels).encode(), Expect({"too_deep"}))
        # Inside the event: the event object is level 1, so k levels under a top-level field give depth k + 1.
        where = rng.choice(["metadata", "payload", "extra", "customer"])
        levels = rng.choice([rng.randrange(2, 30), 31, 32, rng.randrange(33, 200), rng.randrange(200, 6000)])
        placeholder = lit(literals, nested_json(rng, levels))
        if where == "metadata":
            event["metadata"] = {"deep": placeholder}
            depth = levels + 2
            expect = OK if depth <= 32 else Expect({"too_deep"})
        elif where == "payload":
            event["payload"]["deep"] = placeholder
            depth = levels + 2
            expect = SCHEMA_INVALID if depth <= 32 else Expect({"too_deep"})
        elif where == "customer":
            event["customer"]["id"] = placeholder
            depth = levels + 2
            expect = SCHEMA_INVALID if depth <= 32 else Expect({"too_deep"})
        else:
            event["x"] = placeholder
            depth = levels + 1
            expect = SCHEMA_INVALID if depth <= 32 else Expect({"too_deep"})
        value = dumps(rng, event, literals)
        return _Draft(f"deep/{where}", value, expect)

    def deep_in_strings(self) -> _Draft:
        rng = self.rng
        channel, event = self._event()
        event.setdefault("metadata", {})["brackets"] = "[" * rng.randrange(40, 3000) + "{" * 50 + '\\"'
        return _Draft("deep/inside_strings", dumps(rng, event), OK)

    def huge_number(self) -> _Draft:
        rng = self.rng
        channel, event = self._event()
        literals: dict[str, str] = {}
        digits = rng.choice([101, 300, 4300, 4301, 5000, rng.randrange(102, 6000)])
        literal = ("-" if rng.random() < 0.3 else "") + rng.choice("123456789") + "".join(rng.choice(string.digits) for _ in range(digits - 1))
        kind = "int"
        if rng.random() < 0.25:
            literal, kind = rng.choice(["1e999", "-1e400", "1E+309", "9" * 400 + ".5", "1" + "0" * 320 + ".0"]), "float"
        where = rng.choice(["metadata", "rating", "top", "customer.id", "received_at"])
        if where == "rating" and channel == "app":
            event["payload"]["rating"] = lit(literals, literal)
        elif where == "top":
            event["n"] = lit(literals, literal)
        elif where == "customer.id":
            event["customer"]["id"] = lit(literals, literal)
        elif where == "received_at":
            event["received_at"] = lit(literals, literal)
        else:
            where = "metadata"
            event.setdefault("metadata", {})["n"] = lit(literals, literal)
        return _Draft(f"huge_number/{kind}/{where}", dumps(rng, event, literals), Expect({"number_too_large"}))

    def big_but_fine_number(self) -> _Draft:
        rng = self.rng
        channel, event = self._event()
        literals: dict[str, str] = {}
        digits = rng.randrange(20, 101)
        event.setdefault("metadata", {})["n"] = lit(literals, ("-" if rng.random() < 0.5 else "") + "9" * digits)
        event["metadata"]["f"] = lit(literals, rng.choice(["1e308", "-1.7976931348623157e308", "5e-324", "1e-400"]))
        return _Draft("huge_number/within_limits", dumps(rng, event, literals), OK)

    def not_finite(self) -> _Draft:
        rng = self.rng
        channel, event = self._event()
        literals: dict[str, str] = {}
        literal = rng.choice(["NaN", "Infinity", "-Infinity"])
        where = rng.choice(["metadata", "rating", "top"])
        if where == "rating":
            event["payload"]["rating"] = lit(literals, literal)
        elif where == "top":
            event["score"] = lit(literals, literal)
        else:
            event.setdefault("metadata", {})["x"] = lit(literals, literal)
        return _Draft(f"not_finite/{literal}", dumps(rng, event, literals), Expect({"not_json"}))

    def dates(self) -> _Draft:
        rng = self.rng
        channel, event = self._event()
        bad = ["0001-01-01T00:00:00+08:00", "0001-01-01T00:00:00+00:00", "0001-01-01T07:59:59+08:00", "9999-12-31T23:59:59-05:00",
               "9999-12-31T23:59:59+00:00", "9999-12-31T23:59:59.999999-00:01", "2026-11-16T09:00:00+24:00", "2026-11-16T09:00:00+99:99",
               "2026-13-01T00:00:00+08:00", "2026-02-30T00:00:00+08:00", "2026-11-16T25:00:00+08:00", "2026-11-16T09:00:00",
               "10000-01-01T00:00:00+00:00", "-0001-01-01T00:00:00+00:00", "2026-11-16T09:00:00+08:00:00:00", "0000-01-01T00:00:00Z"]
        fine = ["0002-01-01T08:00:00+08:00", "9998-12-31T23:59:59+00:00", "1970-01-01T00:00:00Z", "2026-11-16T09:00:00.999999+14:00",
                "2026-11-16T09:00:00-12:00", "2000-02-29T12:00:00+05:30"]
        if rng.random() < 0.75:
            event["received_at"] = rng.choice(bad)
            return _Draft("dates/out_of_range_or_invalid", dumps(rng, event), SCHEMA_INVALID)
        event["received_at"] = rng.choice(fine)
        return _Draft("dates/far_but_fine", dumps(rng, event), OK)

    def channel(self) -> _Draft:
        rng = self.rng
        channel, event = self._event()
        value = rng.choice([{}, [], ["app"], {"app": 1}, {"name": "app"}, 1, True, "APP", "sms", "", " app", "email" if channel != "email" and channel != "email_mime" else "app", None])
        event["channel"] = value
        return _Draft(f"channel/{type(value).__name__}", dumps(rng, event), SCHEMA_INVALID)

    def unicode(self) -> _Draft:
        """Random Unicode (CJK, emoji, RTL, controls, zero-width, combining marks, private use) in free text."""
        rng = self.rng
        channel, event = self._event()
        text = _random_unicode(rng, rng.randrange(0, 60))
        where = rng.choice(["text", "metadata", "customer", "source", "device"])
        expect = OK
        if where == "text":
            if channel in ("email", "email_mime"):
                event["payload"] = {"body": text}
                expect = Expect({NORMALIZED, "decode_failed"}) if text else SCHEMA_INVALID
            else:
                event["payload"]["text"] = text
                expect = Expect({NORMALIZED, "decode_failed"}) if text else SCHEMA_INVALID
        elif where == "metadata":
            event.setdefault("metadata", {})[text] = text
        elif where == "customer":
            event["customer"]["id"] = text
            expect = OK if 1 <= len(text) <= 200 else SCHEMA_INVALID
        elif where == "source":
            event["source"] = text
            expect = OK if 1 <= len(text) <= 100 else SCHEMA_INVALID
        else:
            event["payload"]["device" if channel == "app" else "platform" if channel == "social" else "sender"] = text
        return _Draft(f"unicode/{where}", dumps(rng, event), expect)

    def html_entities(self) -> _Draft:
        rng = self.rng
        channel, event = self._event()
        entities = "".join(rng.choice(["&lt;script&gt;alert(1)&lt;/script&gt;", "&#20320;&#22909;", "&amp;", "&nbsp;", "&#x1F621;", "&#0;", "&#xD800;", "&#1114112;", "&unknown;", "&#99999999999;"]) for _ in range(rng.randrange(1, 5)))
        if channel in ("email", "email_mime"):
            event["payload"] = {"body": f"<html><body><p>{self.builder.sentence()}{entities}</p></body></html>", "subject": entities}
        else:
            event["payload"]["text"] = self.builder.sentence() + entities
        return _Draft(f"html_entities/{'email' if channel.startswith('email') else channel}", dumps(rng, event), OK)

    def broken_mime(self) -> _Draft:
        rng = self.rng
        channel, event = self._event()
        raw = rng.choice([
            b"",
            b"   \r\n",
            b"just some text without any headers",
            bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400))),
            b'From: a@example.com\r\nContent-Type: multipart/mixed; boundary="never"\r\n\r\nno parts here\r\n',
            b"From: a@example.com\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n5L2g5aW9\r\n5L2",
            b"From: a@example.com\r\nContent-Type: text/plain; charset=x-no-such-charset\r\n\r\n\xff\xfe\xfd\xfc" * 3,
            b"From: a@example.com\r\nContent-Type: image/png\r\n\r\n\x89PNG",
            b"Subject: =?utf-8?B?5L2g5aW9?=\r\nContent-Type: text/plain; charset=big5\r\n\r\n" + "我的手機壞了".encode("big5"),
            b"From: a@example.com\r\nSubject: \xff\xfe\r\nContent-Type: text/plain; charset=gbk\r\n\r\n" + "退款".encode("gbk"),
            b"From: a@example.com\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><script>x</script></body></html>",
            b"From: a@example.com\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n--b--",
        ])
        event["channel"] = "email"
        event["payload"] = {"mime_base64": base64.b64encode(raw).decode()}
        if not raw:  # an empty mime_base64 is no content at all
            return _Draft("email/empty_mime", dumps(rng, event), SCHEMA_INVALID)
        # Structure, charsets and empty text: each either decodes to some text or is decode_failed.
        return _Draft("email/broken_mime", dumps(rng, event), Expect({NORMALIZED, "decode_failed"}))

    def empty_text(self) -> _Draft:
        rng = self.rng
        channel, event = self._event()
        text = rng.choice([" ", "\u200b\u200d", "\x00\x01", "@小明 @京东", "https://t.cn/abc", "[怒][泪]", "\n\n\t", "\u2028"])
        event["channel"] = rng.choice(["app", "social"])
        event["payload"] = {"text": text}
        return _Draft("empty_after_cleanup", dumps(rng, event), Expect({NORMALIZED, "decode_failed"}))

    # --- mutations of the bytes ---

    def not_utf8(self) -> _Draft:
        rng = self.rng
        channel, event = self._event()
        text = json.dumps(event, ensure_ascii=False)
        how = rng.choice(["gbk", "big5", "utf-16", "utf-16-le", "latin-1", "flip", "overlong", "surrogate_bytes", "truncated_sequence"])
        if how in ("gbk", "big5", "utf-16", "utf-16-le"):
            value = text.encode({"gbk": "gb18030", "big5": "big5hkscs"}.get(how, how), "replace")
        elif how == "latin-1":
            value = text.replace(event["source"], "café ñ").encode("latin-1", "replace")
        elif how == "flip":
            data = bytearray(text.encode("utf-8"))
            for _ in range(rng.randrange(1, 4)):
                data[rng.randrange(len(data))] = rng.choice([0xFF, 0xFE, 0xC0, 0xC1, 0xF5, 0x80, 0xBF])
            value = bytes(data)
        elif how == "overlong":
            value = text.encode("utf-8").replace(b'"source"', b'"sour\xc0\xe3e"', 1)
        elif how == "surrogate_bytes":
            value = text.encode("utf-8").replace(b'"source": "', b'"source": "\xed\xa0\x80', 1)
        else:
            value = text.encode("utf-8").replace(b'"source": "', b'"source": "\xe5\xa4', 1)
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            return _Draft(f"not_utf8/{how}", value, Expect({"not_utf8"}))
        # Still UTF-8 (UTF-16 of ASCII, a flip that hit nothing): whatever JSON makes of it, but never a crash.
        return _Draft(f"not_utf8/{how}/still_utf8", value, Expect({NORMALIZED, "not_json", "schema_invalid", "not_object", "decode_failed"}))

    def truncated(self) -> _Draft:
        rng = self.rng
        channel, event = self._event()
        value = dumps(rng, event)
        cut = rng.randrange(0, len(value))
        value = value[:cut]
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            return _Draft("truncated/mid_character", value, Expect({"not_utf8"}))
        return _Draft("truncated", value, Expect({"not_json"}))

    def not_object(self) -> _Draft:
        rng = self.rng
        channel, event = self._event()
        options = [
            (b"[]", "not_object"), (b"[1, 2]", "not_object"), (json.dumps([event]).encode(), "not_object"), (b'"feedback"', "not_object"),
            (b"123", "not_object"), (b"-0.5e3", "not_object"), (b"true", "not_object"), (b"null", "not_object"), (b"  []  ", "not_object"),
            (b"", "not_json"), (b"   ", "not_json"), (b"{", "not_json"), (b"{}", "schema_invalid"), (b"NaN", "not_json"), (b"nul", "not_json"),
            (b"{'event_id': 'x'}", "not_json"), (b'{"a":1}{"b":2}', "not_json"), (b"\xef\xbb\xbf" + dumps(rng, event), "not_json"),
            (b"1" * 200, "number_too_large"), (b"<xml/>", "not_json"), (b'{"a":1,}', "not_json"), (b"\x00", "not_json"),
        ]
        value, reason = rng.choice(options)
        return _Draft(f"not_object/{reason}", value, Expect({reason}), ingest_comparable=not value.startswith(b"\xef\xbb\xbf") and not value.strip().startswith(b"["))

    def oversized(self) -> _Draft:
        rng = self.rng
        channel, event = self._event()
        event.setdefault("metadata", {})["pad"] = ""
        base = dumps(rng, event, ascii_only=True)
        room = MAX_EVENT_BYTES - len(base)
        roll = rng.random()
        if roll < 0.15:
            size, expect = room, OK  # exactly at the limit
        elif roll < 0.3:
            size, expect = room + 1, Expect({"too_large"})
        else:
            size, expect = room + rng.randrange(1, 200_000), Expect({"too_large"})
        pad = ("反馈" * (size // 6 + 1)).encode("utf-8")[: size - size % 3] + b"x" * (size % 3)
        value = base.replace(b'"pad": ""', b'"pad": "' + pad + b'"').replace(b'"pad":""', b'"pad":"' + pad + b'"').replace(b'"pad" : ""', b'"pad" : "' + pad + b'"')
        assert (len(value) <= MAX_EVENT_BYTES) == (expect == OK), (len(value), expect)
        return _Draft(f"oversized/{'at_limit' if expect == OK else 'over'}", value, expect, ingest_comparable=False)

    def tombstone(self) -> _Draft:
        return _Draft("tombstone", None, Expect({"not_json"}), ingest_comparable=False)

    def version_header(self) -> _Draft:
        rng = self.rng
        channel, event = self._event()
        version = rng.choice([b"2", b"0", b"", b"1.0", b"v1", b" 1", b"\xff", b"99999999999999999999", b"1"])
        expect = OK if version == b"1" else Expect({"unsupported_version"})
        return _Draft(f"schema_version/{'1' if version == b'1' else 'other'}", dumps(rng, event), expect, [("schema_version", version)], ingest_comparable=False)

    def odd_headers(self) -> _Draft:
        rng = self.rng
        channel, event = self._event()
        headers = [(rng.choice(["schema", "content_type", "x-\u4e2d", "", "schema"]), rng.choice([b"\xff\xfe", b"", b"feedback.normalized", "值".encode()])) for _ in range(rng.randrange(1, 4))]
        return _Draft("headers/odd", dumps(rng, event), OK, headers)

    def duplicate_keys(self) -> _Draft:
        rng = self.rng
        channel, event = self._event()
        value = dumps(rng, event, ascii_only=False)
        wrong = rng.choice(['"channel": {}', '"channel": "app"', '"payload": []', '"received_at": "0001-01-01T00:00:00+08:00"'])
        # JSON's last key wins: a bad value first is overridden by the good one.
        value = b"{" + wrong.encode() + b", " + value[1:]
        return _Draft("duplicate_keys/bad_first", value, OK)

    def combo(self) -> _Draft:
        """Two faults at once: the stage names one of them."""
        first, second = self.rng.sample([self.wrong_type, self.deep, self.huge_number, self.surrogate, self.dates, self.channel, self.not_finite], 2)
        a = first()
        b = second()
        # Splice b's top-level fields into a's when both are objects; otherwise keep a.
        if a.value and b.value and a.value.startswith(b"{") and b.value.startswith(b"{") and a.value.endswith(b"}") and b.value.endswith(b"}"):
            try:
                a.value.decode("utf-8")
                b.value.decode("utf-8")
            except UnicodeDecodeError:
                return a
            value = a.value[:-1] + b', "zz_combo": ' + b.value + b"}"
            # b's event becomes a field of a's (one level deeper): unknown, so schema_invalid at least.
            expect = a.expect | b.expect | SCHEMA_INVALID | (Expect({"too_deep"}) if "deep" in a.kind + b.kind else Expect())
            return _Draft(f"combo/{a.kind.split('/')[0]}+{b.kind.split('/')[0]}", value, expect - {NORMALIZED})
        return a


def _random_unicode(rng: random.Random, length: int) -> str:
    pools = [
        (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x1F300, 0x1F6FF), (0x1F900, 0x1F9FF), (0x0590, 0x05FF), (0x0600, 0x06FF),
        (0x0000, 0x001F), (0x007F, 0x009F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2066, 0x2069), (0x0300, 0x036F), (0xE000, 0xF8FF),
        (0xFF01, 0xFF5E), (0x3000, 0x303F), (0xFE00, 0xFE0F), (0xFFF0, 0xFFFF), (0x10FFF0, 0x10FFFF), (0x0020, 0x007E), (0x2028, 0x2029),
        (0xAC00, 0xD7AF), (0x3040, 0x30FF), (0x1F1E6, 0x1F1FF),
    ]
    out = []
    for _ in range(length):
        low, high = rng.choice(pools)
        out.append(chr(rng.randrange(low, high + 1)))
    return "".join(out)


# (generator, weight): valid events are about a third of the cases.
_MIX: list[tuple[str, float]] = [
    ("valid", 30), ("duplicate", 4), ("wrong_type", 6), ("lax_type", 2), ("missing", 4), ("extra", 4), ("nulls", 4), ("surrogate", 5),
    ("deep", 5), ("deep_in_strings", 1), ("huge_number", 4), ("big_but_fine_number", 1), ("not_finite", 2), ("dates", 3), ("channel", 3),
    ("unicode", 4), ("html_entities", 2), ("broken_mime", 2), ("empty_text", 1), ("not_utf8", 4), ("truncated", 3), ("not_object", 3),
    ("oversized", 0.6), ("tombstone", 1), ("version_header", 2), ("odd_headers", 1), ("duplicate_keys", 1), ("combo", 3),
]


def generate(seed: int = DEFAULT_SEED, count: int = DEFAULT_CASES) -> list[Case]:
    """``count`` cases, the same ones for the same seed."""
    gen = Generator(seed)
    names = [name for name, _ in _MIX]
    weights = [weight for _, weight in _MIX]
    cases = []
    for index in range(count):
        gen.index = index
        gen.builder.planted = []
        draft: _Draft = getattr(gen, gen.rng.choices(names, weights)[0])()
        headers = [("trace_id", f"fuzz-{seed}-{index:05d}".encode()), *draft.headers]
        key = gen.rng.choice([b"c1", None, b"\xff\xfe", "客户".encode(), b"k" * 300]) if gen.rng.random() < 0.1 else f"c{index % 97}".encode()
        if draft.value is None and key is None:
            key = b"c0"  # a tombstone deletes a key: Kafka clients refuse one without
        cases.append(Case(index, draft.kind, draft.value, key, tuple(headers), frozenset(draft.expect), tuple(gen.builder.planted), draft.ingest_comparable))
    return cases
