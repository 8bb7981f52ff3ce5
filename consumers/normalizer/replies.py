"""Quoted replies and signatures: keep only what the customer wrote in this message."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# A line that starts the quoted original: everything from it on is the earlier conversation.
_QUOTE_START = [
    re.compile(r"^-{2,}\s*(原始邮件|原始郵件|Original Message|转发邮件|轉發郵件|Forwarded message)\s*-{2,}\s*$", re.I),
    re.compile(r"^(在|於|于).{0,80}(写道|寫道)\s*[:：]?\s*$"),
    re.compile(r"^On .{0,200}wrote:\s*$", re.I),
    re.compile(r"^_{10,}\s*$"),  # Outlook's separator line above the header block
]
# Header blocks of a quoted message: 发件人/From followed by at least one more header line.
_HEADER_FIRST = re.compile(r"^\s*(发件人|寄件者|寄件人|From)\s*[:：]", re.I)
_HEADER_NEXT = re.compile(
    r"^\s*(发送时间|发送日期|寄件日期|日期|时间|收件人|收件者|抄送|主题|主旨|Sent|Date|To|Cc|Subject)\s*[:：]", re.I
)
_SIGNATURE_START = re.compile(r"^(-- ?|——+|--)$")
# Mobile clients' trailers, e.g. 发自我的iPhone, Sent from my Huawei.
_CLIENT_TRAILER = re.compile(
    r"^(发自我的|發自我的|来自我的|來自我的|发自|發自|Sent from my|Get Outlook for)\s*\S.{0,30}$", re.I
)


@dataclass
class Stripped:
    text: str
    flags: list[str] = field(default_factory=list)


def _quote_start(lines: list[str]) -> int | None:
    for index, line in enumerate(lines):
        stripped = line.strip()
        if any(pattern.match(stripped) for pattern in _QUOTE_START):
            return index
        if _HEADER_FIRST.match(stripped):
            following = [l for l in lines[index + 1 : index + 5] if l.strip()]
            if any(_HEADER_NEXT.match(l) for l in following[:3]):
                return index
    return None


def strip_replies(text: str) -> Stripped:
    """Cut quoted originals (header blocks, 原始邮件, 写道, '>' lines) and signatures; never empty a message."""
    flags: list[str] = []
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")

    start = _quote_start(lines)
    if start is not None and any(l.strip() for l in lines[:start]):
        lines = lines[:start]
        flags.append("quoted_reply_removed")
    kept = [l for l in lines if not l.lstrip().startswith(">")]
    if len(kept) != len(lines) and any(l.strip() for l in kept):
        lines = kept
        if "quoted_reply_removed" not in flags:
            flags.append("quoted_reply_removed")

    for index, line in enumerate(lines):
        if _SIGNATURE_START.match(line.rstrip("\n")) and any(l.strip() for l in lines[:index]):
            lines = lines[:index]
            flags.append("signature_removed")
            break
    # Client trailers sit at the end; only trailing lines are looked at, so "来自北京的用户…" in the body is safe.
    while lines and (not lines[-1].strip() or _CLIENT_TRAILER.match(lines[-1].strip())):
        if lines[-1].strip() and not any(l.strip() for l in lines[:-1]):
            break
        if lines[-1].strip() and "signature_removed" not in flags:
            flags.append("signature_removed")
        lines.pop()
    return Stripped("\n".join(lines).strip(), flags)
