"""Theme labels: jieba tokens weighted by class-based TF-IDF (c-TF-IDF).

Each theme's messages form one document; a term's weight is its frequency
within the theme times log(1 + A / f), where A is the average number of
terms per theme and f the term's frequency over all themes. Terms common to
every theme (筷子 in a food-delivery week) sink; words peculiar to one rise.
A domain user dictionary keeps terms like 闪退 or 骑手 whole; a stop-word
list drops function words. Both ship as data files; settings can add more.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import jieba

_TOKEN = re.compile(r"^[\u4e00-\u9fffA-Za-z][\u4e00-\u9fffA-Za-z0-9]*$")
# PII placeholders ([手机号], [邮箱] …) and emoticons ([怒]) are not topics.
_REDACTED = re.compile(r"\[[^\[\]\s]{1,8}\]|<[A-Z_]+>")
# Quantities (一个半, 三天, 两次, 10分钟) say how much, not what about.
_QUANTITY = re.compile(r"^[\d一二三四五六七八九十百千万两半几多每]+[个天次月年周号点块元件单分钟小时遍]*[半多]?$")


def _data_file(name: str) -> Path:
    return Path(str(resources.files("consumers.themes") / "data" / name))


def load_stop_words(extra: Path | None = None) -> set[str]:
    words = set(_data_file("stopwords.txt").read_text(encoding="utf-8").split())
    if extra is not None:
        words |= set(Path(extra).read_text(encoding="utf-8").split())
    return words


class KeywordExtractor:
    def __init__(self, user_dict: Path | None = None, stop_words: Path | None = None):
        # A private tokenizer: the user dictionaries never leak into jieba's global one.
        self._tokenizer = jieba.Tokenizer()
        self._tokenizer.load_userdict(str(_data_file("userdict.txt")))
        if user_dict is not None:
            self._tokenizer.load_userdict(str(user_dict))
        self.stop_words = load_stop_words(stop_words)

    def tokens(self, text: str) -> list[str]:
        text = _REDACTED.sub(" ", text)
        return [
            tok
            for tok in (t.strip() for t in self._tokenizer.lcut(text))
            if len(tok) >= 2 and tok.lower() not in self.stop_words and _TOKEN.match(tok) and not _QUANTITY.match(tok)
        ]

    def keywords(self, documents: Sequence[Sequence[str]], top: int = 6) -> list[list[str]]:
        """For each theme (a list of its texts), its ``top`` terms by c-TF-IDF."""
        counts = [Counter(tok for text in texts for tok in self.tokens(text)) for texts in documents]
        if not counts:
            return []
        overall: Counter[str] = Counter()
        for c in counts:
            overall.update(c)
        average = sum(overall.values()) / len(counts) or 1.0
        out = []
        for c in counts:
            total = sum(c.values()) or 1
            weights = {t: (n / total) * math.log(1 + average / overall[t]) for t, n in c.items()}
            out.append([t for t, _ in sorted(weights.items(), key=lambda tw: (-tw[1], tw[0]))[:top]])
        return out
