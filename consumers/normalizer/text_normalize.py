"""Text clean-up shared by all channels: Unicode forms, script, whitespace, emoji, length, language."""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache

from consumers.normalizer.pii import PARTIAL_PLACEHOLDER, PLACEHOLDER

# Emoji blocks (pictographs, symbols, dingbats, flags); kept in the text (they carry sentiment) and listed as a signal.
_EMOJI = re.compile(
    "[\U0001F000-\U0001FAFF\U00002600-\U000027BF\U0001F1E6-\U0001F1FF\U00002B00-\U00002BFF]"
)
# Joiners, variation selectors and skin-tone modifiers only change how an emoji looks.
_EMOJI_DECORATION = re.compile("[\u200d\ufe0e\ufe0f\U0001F3FB-\U0001F3FF]")
_REPEATED_EMOJI = re.compile(r"(([\U0001F000-\U0001FAFF\u2600-\u27BF])\2{2})\2+")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002FA1F]")
_KANA = re.compile(r"[\u3040-\u30ff]")
_HANGUL = re.compile(r"[\uac00-\ud7af\u1100-\u11ff]")
_LATIN_WORD = re.compile(r"[A-Za-z\u00c0-\u024f]{2,}")
_HORIZONTAL_SPACE = re.compile(r"[^\S\n]+")
# After NFKC Chinese punctuation is ASCII; a space before it is left over from markup or typing.
_SPACE_BEFORE_PUNCT = re.compile(r" +(?=[,.!?;:。、)\]])")


# A character reference: &amp; &lt; &zwj; &#8203; &#x4e2d; (web forms and app stores hand some over escaped).
_ENTITY = re.compile(r"&(?:#\d{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")


def unescape_entities(text: str) -> str:
    """HTML character references become the characters they stand for (``&amp;`` → ``&``, ``&zwj;`` →
    U+200D, removed next as a format character). Text is never HTML here: whoever shows it escapes it
    again (the digest does), so ``&lt;script&gt;`` stays visible text, never markup."""
    return html.unescape(text) if _ENTITY.search(text) else text


def strip_controls(text: str) -> str:
    """Drop control and format characters (keep line breaks and tabs)."""
    return "".join(ch for ch in text if ch in "\n\r\t" or unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co"))


def nfkc(text: str) -> str:
    """NFKC: full-width letters, digits and punctuation become their ordinary forms."""
    return unicodedata.normalize("NFKC", text)


@lru_cache(maxsize=4)
def _converter(config: str):
    from opencc import OpenCC

    return OpenCC(config)


def to_simplified(text: str, config: str = "t2s") -> str:
    return _converter(config).convert(text)


def tidy_emoji(text: str) -> tuple[str, list[str]]:
    """Remove emoji decorations, cap runs of one emoji at three; returns the text and the emoji found."""
    text = _EMOJI_DECORATION.sub("", text)
    text = _REPEATED_EMOJI.sub(r"\1", text)
    return text, _EMOJI.findall(text)


def tidy_whitespace(text: str) -> str:
    """Runs of spaces become one (spaces between Chinese words are kept: they separate phrases), no blank lines."""
    lines = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = _SPACE_BEFORE_PUNCT.sub("", _HORIZONTAL_SPACE.sub(" ", line)).strip()
        if line:
            lines.append(line)
    return "\n".join(lines)


def truncate(text: str, max_chars: int) -> tuple[str, bool]:
    """Cut to ``max_chars`` (ending in …); never leaves half a PII placeholder behind."""
    if len(text) <= max_chars:
        return text, False
    head = PARTIAL_PLACEHOLDER.sub("", text[: max_chars - 1])
    return head.rstrip() + "…", True


def detect_language(text: str, min_chinese_share: float = 0.5) -> str:
    """zh, ja, ko, en or und, by script counts (a Latin word weighs as two characters)."""
    text = PLACEHOLDER.sub("", text)
    han, kana, hangul = len(_HAN.findall(text)), len(_KANA.findall(text)), len(_HANGUL.findall(text))
    latin = 2 * len(_LATIN_WORD.findall(text))
    total = han + kana + hangul + latin
    if total == 0:
        return "und"
    if kana and kana >= 0.2 * (han + kana) and (han + kana) / total >= min_chinese_share:
        return "ja"
    if han / total >= min_chinese_share:
        return "zh"
    if hangul / total >= 0.5:
        return "ko"
    if latin / total >= 0.5:
        return "en"
    return "und"


@dataclass
class CleanText:
    text: str
    flags: list[str] = field(default_factory=list)
    emoji: list[str] = field(default_factory=list)
    original_chars: int = 0


def clean_text(text: str, opencc_config: str = "t2s") -> CleanText:
    """HTML entities unescaped, controls out, NFKC, Traditional → Simplified, emoji tidied, whitespace collapsed."""
    original = len(text)
    text = strip_controls(unescape_entities(text))
    text = nfkc(text)
    converted = to_simplified(text, opencc_config)
    flags = ["traditional_converted"] if converted != text else []
    text, emoji = tidy_emoji(converted)
    return CleanText(tidy_whitespace(text), flags, emoji, original)
