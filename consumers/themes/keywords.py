"""Theme labels: jieba words and short phrases weighted by class-based TF-IDF (c-TF-IDF).

Each theme's messages form one document; a term's weight is its frequency
within the theme times log(1 + A / f), where A is the average number of
terms per theme and f the term's frequency over all themes. Terms common to
every theme (筷子 in a food-delivery week) sink; words peculiar to one rise.

Terms are words (two characters or more) and phrases of two adjacent content
words (支付页面, 汤洒, 饭菜凉): jieba's part-of-speech tags keep nouns, verbs and
names as content. Opinion words (adjectives, adverbs, idioms: 不错, 一般, 喜欢)
say how people feel, not what about: their weight is cut to ``OPINION_WEIGHT``
(the card shows the sentiment split instead). Latin tokens with digits
(model codes like A1586) and unknown Latin words (excuseme) are not labels.
A label never repeats a word already inside a phrase it shows.
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
import jieba.posseg

_TOKEN = re.compile(r"^[\u4e00-\u9fffA-Za-z][\u4e00-\u9fffA-Za-z0-9]*$")
_HAN = re.compile(r"^[\u4e00-\u9fff]+$")
# PII placeholders ([手机号], [邮箱] …) and emoticons ([怒]) are not topics.
_REDACTED = re.compile(r"\[[^\[\]\s]{1,8}\]|<[A-Z_]+>")
# Quantities (一个半, 三天, 两次, 10分钟) say how much, not what about.
_QUANTITY = re.compile(r"^[\d一二三四五六七八九十百千万两半几多每]+[个天次月年周号点块元件单分钟小时遍]*[半多]?$")
# Part-of-speech tags (jieba's ICTCLAS set) of content words: nouns, verbs, names, places.
_CONTENT = ("n", "v", "s", "f", "j", "g")
_OPINION_TAGS = ("a", "d", "i", "l", "z", "e", "y", "o")
# Opinion words jieba tags as verbs or nouns.
_OPINION_WORDS = frozenset("喜欢 满意 推荐 失望 好评 差评 值得 不值 不错 一般 垃圾 无语 郁闷 坑爹 感谢 谢谢 支持 希望 建议 觉得 感觉 还行 好吃 难吃 好用 难用 便宜 划算 实惠".split())
OPINION_WEIGHT = 0.15
# A phrase says more than either of its words: it wins a near tie with them.
PHRASE_WEIGHT = 1.1
# Phrases are runs of up to this many adjacent content words, at most this many characters (a label, not a sentence).
MAX_PHRASE_WORDS = 3
MAX_PHRASE_CHARS = 8
# A word gives way to a phrase that contains it when the phrase scores at least this share of the word
# (支付页面 rather than 支付 and 页面 as separate labels).
PHRASE_SHARE = 0.35
# Texts per theme read for its label (part-of-speech tagging costs ~0.7 ms a text).
MAX_TEXTS = 400
# Burst phrases (consumers/themes/bursts.py): runs of 2..3 Chinese characters, no tagging (a week of 100k messages
# must be read in seconds), so a story carried by a one-character verb (洒了, 全洒) is still seen. 2..4 found the
# same stories on the benchmark's seeds and read 100k + 100k messages in 30 s instead of 18 s.
_HAN_RUN = re.compile(r"[\u4e00-\u9fff]+")
BURST_CHARS = (2, 3)


def _data_file(name: str) -> Path:
    return Path(str(resources.files("consumers.themes") / "data" / name))


def load_stop_words(extra: Path | None = None) -> set[str]:
    words = set(_data_file("stopwords.txt").read_text(encoding="utf-8").split())
    if extra is not None:
        words |= set(Path(extra).read_text(encoding="utf-8").split())
    return words


def _user_words(path: Path) -> set[str]:
    return {line.split()[0] for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()}


class KeywordExtractor:
    def __init__(self, user_dict: Path | None = None, stop_words: Path | None = None):
        # A private tokenizer: the user dictionaries never leak into jieba's global one.
        self._tokenizer = jieba.Tokenizer()
        self._tokenizer.load_userdict(str(_data_file("userdict.txt")))
        self.known = _user_words(_data_file("userdict.txt"))
        if user_dict is not None:
            self._tokenizer.load_userdict(str(user_dict))
            self.known |= _user_words(user_dict)
        self._pos = jieba.posseg.POSTokenizer(self._tokenizer)
        self.stop_words = load_stop_words(stop_words)
        self._phrase_verdicts: dict[str, bool] = {}

    def _word_ok(self, tok: str) -> bool:
        return len(tok) >= 2 and tok.lower() not in self.stop_words and bool(_TOKEN.match(tok)) and not _QUANTITY.match(tok)

    def tokens(self, text: str) -> list[str]:
        text = _REDACTED.sub(" ", text)
        return [tok for tok in (t.strip() for t in self._tokenizer.lcut(text)) if self._word_ok(tok)]

    def phrases(self, text: str) -> set[str]:
        """The distinct 2–3 character runs (``BURST_CHARS``) of a text's Chinese, less stop words, opinion words, quantities and runs of
        stop characters alone (了吧): what a text is about, for the lexical burst test."""
        grams: set[str] = set()
        low, high = BURST_CHARS
        for run in _HAN_RUN.findall(_REDACTED.sub(" ", text)):
            for n in range(low, min(high, len(run)) + 1):
                grams.update(run[i:i + n] for i in range(len(run) - n + 1))
        verdict = self._phrase_verdicts  # a week repeats its phrases: each judged once
        out = set()
        for g in grams:
            ok = verdict.get(g)
            if ok is None:
                ok = verdict[g] = self._phrase_ok(g)
            if ok:
                out.add(g)
        return out

    def _phrase_ok(self, gram: str) -> bool:
        stop = self.stop_words
        return (gram not in stop and gram not in _OPINION_WORDS and not _QUANTITY.match(gram)
                and not all(c in stop for c in gram))

    def _latin_ok(self, word: str) -> bool:
        # Brand and model codes (A1586, iPhone6s) and stray Latin words (excuseme, zwj) are not labels;
        # Latin words from a user dictionary (APP) are.
        return word in self.known or word.upper() in {w.upper() for w in self.known if w.isascii()}

    def terms(self, text: str) -> list[tuple[str, float]]:
        """(term, weight) of one text: content words, opinion words (down-weighted), two-word phrases."""
        text = _REDACTED.sub(" ", text)
        out: list[tuple[str, float]] = []
        run: list[str] = []  # the content words just before this one (a phrase in the making)
        for pair in self._pos.lcut(text):
            word, flag = pair.word.strip(), pair.flag
            content = False
            if word and word.lower() not in self.stop_words and not _QUANTITY.match(word):
                if word.isascii():
                    if _TOKEN.match(word) and self._latin_ok(word) and len(word) >= 2:
                        out.append((word, 1.0))
                        content = True
                elif _HAN.match(word):
                    opinion = word in _OPINION_WORDS or flag.startswith(_OPINION_TAGS)
                    if len(word) >= 2:
                        out.append((word, OPINION_WEIGHT if opinion else 1.0))
                    content = not opinion and flag.startswith(_CONTENT)
            if not content:
                run = []
                continue
            run = [*run, word][-MAX_PHRASE_WORDS:]
            # Every run of 2..MAX_PHRASE_WORDS content words ending here (支付页面, 支付页面报错).
            for k in range(2, len(run) + 1):
                phrase = "".join(run[-k:])
                if len(phrase) <= MAX_PHRASE_CHARS:
                    out.append((phrase, PHRASE_WEIGHT))
        return out

    def keywords(self, documents: Sequence[Sequence[str]], top: int = 6) -> list[list[str]]:
        """For each theme (a list of its texts), its ``top`` terms by c-TF-IDF, phrases included."""
        counts: list[Counter] = []
        weights_of: dict[str, float] = {}
        for texts in documents:
            c: Counter[str] = Counter()
            for text in list(texts)[:MAX_TEXTS]:
                for term, weight in self.terms(text):
                    c[term] += 1
                    weights_of[term] = min(weights_of.get(term, weight), weight)
            counts.append(c)
        if not counts:
            return []
        overall: Counter[str] = Counter()
        for c in counts:
            overall.update(c)
        average = sum(overall.values()) / len(counts) or 1.0
        out = []
        for c in counts:
            total = sum(c.values()) or 1
            # A phrase seen once in a theme is chance, not a label.
            scored = {t: (n / total) * math.log(1 + average / overall[t]) * weights_of[t]
                      for t, n in c.items() if n >= 2 or len(c) < 20}
            out.append(self._choose(scored, c, top))
        return out

    @staticmethod
    def _choose(scored: dict[str, float], counts: Counter, top: int) -> list[str]:
        """The ``top`` terms by score, a word replaced by the best phrase containing it when that phrase
        is seen twice or more and scores ``PHRASE_SHARE`` of the word or more; no term repeats one already chosen."""
        ranked = sorted(scored.items(), key=lambda tw: (-tw[1], tw[0]))
        chosen: list[str] = []
        for term, score in ranked:
            longer = [(t, s) for t, s in ranked if term in t and t != term and counts[t] >= 2 and s >= PHRASE_SHARE * score]
            if longer:
                term = max(longer, key=lambda ts: (ts[1] * len(ts[0]) ** 0.5, ts[0]))[0]
            if any(term in other or other in term for other in chosen):
                continue  # 支付 after 支付页面 says nothing new
            chosen.append(term)
            if len(chosen) == top:
                break
        return chosen
