"""Character n-gram TF-IDF features: the lexical view of the issue-type and sentiment heads.

An issue type often hangs on one or two words (退款, 闪退, 隐私, 合同, 建议), and sentiment on
a few more (失望, 不错, 再也不), that a 384-d sentence embedding blurs among everything else the
text says. A linear model on character 1–2-grams sees those words directly; its outputs are
blended with the embedding heads' (``models.issue_heads``, ``models.sentiment_heads``; each has
its own vocabulary). Tokenisation is characters, so there is no word segmenter to ship and no
out-of-vocabulary word splits.

The fitted state is a vocabulary (JSON) and one idf weight per term (in the heads file);
sklearn's vectoriser is rebuilt from them, nothing is pickled.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

NGRAM_RANGE = (1, 2)


def _vectorizer(vocabulary: dict[str, int] | None = None, min_df: int = 2):
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(analyzer="char", ngram_range=NGRAM_RANGE, sublinear_tf=True, lowercase=True,
                           min_df=min_df, vocabulary=vocabulary, dtype=np.float32)


class CharNgrams:
    """Texts → L2-normalised sparse TF-IDF rows over a fixed character 1–2-gram vocabulary."""

    def __init__(self, terms: Sequence[str], idf: np.ndarray) -> None:
        if len(terms) != len(idf):
            raise ValueError(f"{len(terms)} terms but {len(idf)} idf weights")
        self.terms = list(terms)
        self._vec = _vectorizer({t: i for i, t in enumerate(self.terms)})
        self._vec.idf_ = np.asarray(idf, dtype=np.float32)

    @classmethod
    def fit(cls, texts: Sequence[str], min_df: int = 2) -> CharNgrams:
        """Vocabulary = the n-grams found in at least ``min_df`` texts (rarer ones only memorise rows)."""
        vec = _vectorizer(min_df=min_df).fit(list(texts))
        terms = sorted(vec.vocabulary_, key=vec.vocabulary_.get)
        return cls(terms, vec.idf_)

    @property
    def idf(self) -> np.ndarray:
        return self._vec.idf_.astype(np.float32)

    def __len__(self) -> int:
        return len(self.terms)

    def transform(self, texts: Sequence[str]):
        return self._vec.transform(list(texts))

    def save_terms(self, path: Path) -> None:
        path.write_text(json.dumps(self.terms, ensure_ascii=False) + "\n", encoding="utf-8")

    @staticmethod
    def load_terms(path: Path) -> list[str]:
        return json.loads(path.read_text(encoding="utf-8"))
