"""Aspect-level sentiment: clauses, the reading of each aspect, its evaluation and the calibration error."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.aspects import aspect_sentiments, split_clauses
from models.evaluation import EvalDataError, expected_calibration_error, read_eval_file
from models.taxonomy import ISSUE_TYPES, SENTIMENTS

NEG, NEU, POS = (np.eye(3)[i] for i in range(3))


def test_clauses_cut_at_punctuation_and_before_contrast_words():
    assert split_clauses("物流很快但是质量很差") == ["物流很快", "但是质量很差"]
    assert split_clauses("菜很好吃，就是送得太慢了！") == ["菜很好吃", "就是送得太慢了"]
    assert split_clauses("骑手倒是挺客气") == ["骑手倒是挺客气"]  # 倒是 follows its subject: no cut
    assert split_clauses("不但便宜而且好用") == ["不但便宜而且好用"]
    assert split_clauses("好。") == ["好。"]  # too short to cut: the message stays whole


def _readers(topics: dict[str, str], moods: dict[str, np.ndarray]):
    """Clause readers that know a few clauses: which issue type each names, and its sentiment."""
    def issue(clauses):
        out = np.full((len(clauses), len(ISSUE_TYPES)), 0.05)
        for k, c in enumerate(clauses):
            if c in topics:
                out[k, ISSUE_TYPES.index(topics[c])] = 0.9
        return out

    def sentiment(clauses):
        return np.array([moods.get(c, NEU) for c in clauses])

    return issue, sentiment


def test_each_aspect_takes_the_sentiment_of_the_clauses_that_name_it():
    issue, sentiment = _readers({"物流很快": "logistics", "但是质量很差": "product_quality"},
                                {"物流很快": POS, "但是质量很差": NEG})
    got = aspect_sentiments(["物流很快但是质量很差"], [["product_quality", "logistics"]], np.array([NEG]), issue, sentiment)
    assert got == [{"product_quality": "negative", "logistics": "positive"}]


def test_aspects_fall_back_to_the_verdict_and_fixed_labels_keep_their_meaning():
    issue, sentiment = _readers({}, {})
    texts = ["送得很慢，态度也差", "很好吃", "好吃，建议多放辣"]
    labels = [["logistics", "service_attitude"], ["praise"], ["praise", "suggestion"]]
    got = aspect_sentiments(texts, labels, np.array([NEG, POS, POS]), issue, sentiment)
    assert got[0] == {"logistics": "negative", "service_attitude": "negative"}  # no clause names either clearly
    assert got[1] == {"praise": "positive"}
    assert got[2] == {"praise": "positive", "suggestion": "neutral"}
    # Without clause readers every aspect takes the message's sentiment.
    assert aspect_sentiments(texts[:1], labels[:1], np.array([POS]), None, None) == [
        {"logistics": "positive", "service_attitude": "positive"}]


def test_calibration_error_is_the_gap_between_confidence_and_accuracy():
    assert expected_calibration_error(np.array([0.95] * 10), np.array([1] * 10)) == pytest.approx(0.05)
    assert expected_calibration_error(np.array([0.95] * 10), np.array([1] * 5 + [0] * 5)) == pytest.approx(0.45)
    assert expected_calibration_error(np.array([0.55, 0.95]), np.array([1, 1])) == pytest.approx((0.45 + 0.05) / 2)


def _write(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_aspect_files_need_one_sentiment_per_label(tmp_path):
    good = {"text": "物流很快但是质量很差", "labels": ["product_quality", "logistics"],
            "aspects": {"product_quality": "negative", "logistics": "positive"}}
    rows = read_eval_file(_write(tmp_path / "a.jsonl", [good]), "aspect_sentiment")
    assert rows[0].label == "product_quality" and rows[0].aspects["logistics"] == "positive"
    bad = [{**good, "aspects": {"product_quality": "negative"}},
           {**good, "aspects": {"product_quality": "negative", "logistics": "great"}},
           {"text": "x", "label": "logistics"}]
    with pytest.raises(EvalDataError) as err:
        read_eval_file(_write(tmp_path / "b.jsonl", bad), "aspect_sentiment")
    assert sorted(err.value.errors) == [1, 2, 3]
    with pytest.raises(EvalDataError):
        read_eval_file(_write(tmp_path / "c.jsonl", [{**good, "label": "product_quality"}]), "issue_type")


@pytest.mark.model
def test_the_real_model_reads_opposite_aspects_of_one_message(feedback_model):
    texts = ["物流很快，但是质量很差，用了两天就坏了", "菜很难吃，不过骑手送得很快"]
    labels = [["product_quality", "logistics"], ["product_quality", "logistics"]]
    verdicts = np.array([[p.sentiment_probs[s] for s in SENTIMENTS] for p in feedback_model.predict(texts)])
    got = feedback_model.aspect_sentiments(texts, labels, verdicts)
    assert got[0] == {"product_quality": "negative", "logistics": "positive"}
    assert got[1] == {"product_quality": "negative", "logistics": "positive"}
    # Predictions carry the aspects of their own labels, and the primary label's confidence.
    pred = feedback_model.predict(texts[:1])[0]
    assert set(pred.aspect_sentiments) == set(pred.issue_labels)
    assert 0.0 < pred.issue_confidence <= 1.0
