"""Sentiment heads: the character n-gram head and its log-linear blend with the encoder head (no encoder needed)."""

from __future__ import annotations

import numpy as np
import pytest

from models.sentiment_heads import PREFIX, fit_lexical_sentiment, lexical_logits, sentiment_probs
from models.taxonomy import SENTIMENTS

CUES = {
    "negative": ["太失望了", "质量很差", "再也不买了", "态度恶劣"],
    "neutral": ["今天去了一趟", "收到了", "请问几点开门", "在路上"],
    "positive": ["非常满意", "味道不错", "五星好评", "下次还来"],
}
FILLERS = ["这次", "说实话", "上周", "昨天", "真的", "总之"]


def test_ngram_head_learns_the_cue_words(cue_rows):
    texts, labels = cue_rows(CUES, FILLERS, 20, 0)
    ngrams, heads = fit_lexical_sentiment(texts, labels, C=10.0, min_df=1)
    assert heads[f"{PREFIX}.weight"].shape == (len(SENTIMENTS), len(ngrams))
    assert np.allclose(heads[f"{PREFIX}.idf"], ngrams.idf)
    probe = ["说实话太失望了", "总之五星好评", "昨天收到了"]
    pred = lexical_logits(ngrams, probe, heads).argmax(1)
    assert [SENTIMENTS[i] for i in pred] == ["negative", "positive", "neutral"]


def test_binary_training_rows_never_predict_the_missing_class(cue_rows):
    texts, labels = cue_rows(CUES, FILLERS, 15, 1)
    keep = [i for i, lab in enumerate(labels) if lab != "neutral"]
    ngrams, heads = fit_lexical_sentiment([texts[i] for i in keep], [labels[i] for i in keep], C=10.0, min_df=1)
    probs = sentiment_probs(np.zeros((3, 3)), lexical_logits(ngrams, ["今天去了一趟", "质量很差", "味道不错"], heads), 0.0)
    assert probs[:, SENTIMENTS.index("neutral")].max() < 1e-6
    assert [SENTIMENTS[i] for i in probs.argmax(1)[1:]] == ["negative", "positive"]


def test_blend_is_log_linear_in_the_two_heads():
    enc = np.array([[2.0, 0.0, -1.0], [0.0, 0.5, 0.0]])
    lex = np.array([[-6.0, 0.0, 6.0], [0.0, 0.0, 0.0]])
    assert np.allclose(sentiment_probs(enc, None, 0.7), sentiment_probs(enc, lex, 1.0))
    p = sentiment_probs(enc, lex, 0.7)
    expected = np.exp(0.7 * enc + 0.3 * lex)
    assert np.allclose(p, expected / expected.sum(1, keepdims=True))
    # the first row: the encoder leans negative, the n-grams strongly positive; the blend follows the stronger evidence
    assert p[0].argmax() == SENTIMENTS.index("positive") and p[0].sum() == pytest.approx(1.0)
