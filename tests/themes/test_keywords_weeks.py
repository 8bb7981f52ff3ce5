"""jieba c-TF-IDF keywords with the shipped dictionaries; ISO week arithmetic; calibration guards."""

from __future__ import annotations

import numpy as np
import pytest

from consumers.themes.calibration import calibrate
from consumers.themes.types import theme_label
from consumers.themes.keywords import KeywordExtractor
from consumers.themes.weeks import iso_week, parse_week, previous_week, shift_week, week_start


@pytest.fixture(scope="module")
def extractor() -> KeywordExtractor:
    return KeywordExtractor()


def test_user_dictionary_keeps_domain_terms_and_stop_words_go(extractor):
    tokens = extractor.tokens("更新新版本后一直闪退，骑手也不接电话，我们真的很无语 [PHONE] <EMAIL>")
    assert "闪退" in tokens and "骑手" in tokens and "新版本" in tokens
    assert not {"我们", "真的", "PHONE", "EMAIL", "很"} & set(tokens)


def test_ctfidf_prefers_words_peculiar_to_a_theme(extractor):
    delivery = ["外卖订单超时，骑手送餐太慢", "骑手超时一小时，外卖订单都凉了", "外卖订单配送超时"]
    crash = ["外卖订单页面闪退", "APP闪退，外卖订单下不了", "一打开就闪退"]
    words = extractor.keywords([delivery, crash], top=3)
    assert words[0][0] in {"超时", "骑手"} and words[1][0] == "闪退"
    assert "订单" not in words[0][:2] and "订单" not in words[1][:2]  # common to both themes


def test_extra_dictionaries_from_settings(tmp_path):
    (tmp_path / "dict.txt").write_text("极速达 100 n\n", encoding="utf-8")
    (tmp_path / "stop.txt").write_text("体验\n", encoding="utf-8")
    extractor = KeywordExtractor(tmp_path / "dict.txt", tmp_path / "stop.txt")
    tokens = extractor.tokens("极速达体验很差")
    assert "极速达" in tokens and "体验" not in tokens


def test_iso_weeks():
    from datetime import datetime, timedelta, timezone

    assert iso_week(datetime(2026, 11, 16, 9, tzinfo=timezone(timedelta(hours=8)))) == "2026-W47"
    assert iso_week(datetime(2026, 11, 16, 7, tzinfo=timezone(timedelta(hours=8)))) == "2026-W46"  # Sunday 23:00 UTC
    assert week_start("2026-W47") == datetime(2026, 11, 16, tzinfo=timezone.utc)
    assert previous_week("2027-W01") == "2026-W53" and shift_week("2026-W52", 2) == "2027-W01"
    for bad in ("2026W47", "2026-W54", "2025-W53", "week 47"):
        with pytest.raises(ValueError):
            parse_week(bad)


def test_calibration_separates_topics_and_refuses_too_little_data():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 32))
    labels = np.repeat(["a", "b", "c"], 60)
    x = centres[np.searchsorted(["a", "b", "c"], labels)] + rng.normal(scale=1.5, size=(180, 32))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    result = calibrate(x, labels, target_precision=0.9, sizes=(1, 5), group_size=5, trials=300)
    assert [k for k, _ in result.live_curve] == [1, 5]
    for k, threshold in result.live_curve:
        same, other = result.distributions[f"centroid_k{k}"]["same_topic"], result.distributions[f"centroid_k{k}"]["other_topic"]
        assert same[1] > other[1]  # (p10, p50, p90): the topics are separable
        assert other[1] < threshold <= same[2]  # precision 0.9 puts the bar above most other-topic pairs
    with pytest.raises(ValueError, match="two topics"):
        calibrate(x, ["a"] * 180)
    with pytest.raises(ValueError, match="needs more than"):
        calibrate(x[50:80], labels[50:80])


def test_labels_are_phrases_about_the_subject_not_opinions_or_codes(extractor):
    pay = ["支付页面一直转圈，不错不错", "支付页面打不开，很一般", "支付页面白屏了，A1586 excuseme", "今天支付页面报错"]
    other = ["衣服掉色严重，喜欢", "洗了一次就掉色", "衣服掉色，一般般", "掉色太厉害"]
    words = extractor.keywords([pay, other], top=3)
    assert words[0][0] == "支付页面" and "掉色" in words[1][0]
    for labels in words:  # opinion words only fill in after the subject (never in the label shown); codes never
        assert labels[0] not in {"不错", "一般", "喜欢", "一般般"} and not {"A1586", "excuseme"} & set(labels)
        assert not {"不错", "一般", "喜欢", "一般般"} & set(theme_label(labels).split("、"))
    # A word inside a label's phrase is not repeated.
    assert not {"支付", "页面"} & set(words[0])


def test_html_entities_are_unescaped_by_the_normalizer_and_never_become_keywords(extractor):
    from consumers.normalizer.text_normalize import clean_text

    assert clean_text("好评&amp;推荐&zwj;&#8203;，质量&quot;很好&quot;").text == '好评&推荐,质量"很好"'
    assert clean_text("价格&lt;script&gt;").text == "价格<script>"  # text, escaped again wherever it is shown
    assert clean_text("A&B 没问题").text == "A&B 没问题"
    texts = [clean_text(t).text for t in ("包装&quot;破损&quot;&amp;漏液", "包装破损&zwj;了", "包装&nbsp;破损")]
    assert not {"quot", "amp", "zwj", "nbsp"} & {w.lower() for w in extractor.keywords([texts], top=6)[0]}
