"""One problem, one entry: noise joins its theme, a story cut in pieces is listed once; labels read as
phrases; the digest's optional polarity view; the topic encoder groups by subject, not by sentiment."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from consumers.themes.keywords import KeywordExtractor
from consumers.themes.types import WeekFeedback, WeeklyTheme, theme_label
from consumers.themes.weekly import WeeklyRules, attach_noise, build_week


class _Fixed:
    """A clusterer that returns given labels (the weekly logic is under test, not the clusterer)."""

    def __init__(self, labels):
        self.labels = np.asarray(labels)

    def cluster(self, embeddings):
        return self.labels


def _unit_rows(m: np.ndarray) -> np.ndarray:
    return (m / np.linalg.norm(m, axis=1, keepdims=True)).astype(np.float32)


def _feedback(vectors: np.ndarray, prefix: str) -> WeekFeedback:
    n = len(vectors)
    return WeekFeedback([f"{prefix}{i}" for i in range(n)], vectors.astype(np.float32), ["汤洒了一袋子"] * n, ["app"] * n,
                        ["logistics"] * n, ["negative"] * n, [-0.5] * n, [None] * n)


RULES = WeeklyRules(continuity_similarity=0.9, merge_centroid_similarity=0.99, member_similarity=0.3,
                    emerging_min_volume=10, fading_min_volume=20, story_merge_similarity=0.6, attach_similarity=0.5)


def test_noise_joins_the_nearest_theme_only_when_similar_enough():
    e = np.eye(4, dtype=np.float32)
    x = _unit_rows(np.stack([e[0], e[0], e[1], e[1], e[0] + 0.2 * e[1], e[2]]))
    got = attach_noise(x, np.array([0, 0, 1, 1, -1, -1]), 0.5)
    assert got.tolist() == [0, 0, 1, 1, 0, -1]  # the lone e[2] message is like no theme: still noise
    assert attach_noise(x, np.array([0, 0, 1, 1, -1, -1]), None).tolist() == [0, 0, 1, 1, -1, -1]


def test_a_story_cut_in_two_emerging_pieces_is_one_entry_and_another_story_stays_apart():
    e = np.eye(8, dtype=np.float32)
    steady = [e[0]] * 40
    # The spill story: two close directions (the clustering kept them apart), 30 + 25 this week from 3 + 2.
    a, b = _unit_rows(np.stack([e[1] + 0.5 * e[2], e[1] + 0.5 * e[3]]))
    other = e[5]  # an unrelated story growing at the same time
    last = _feedback(np.stack(steady + [a] * 3 + [b] * 2 + [other] * 2), "a")
    first = build_week("2026-W46", last, [], _Fixed([0] * 40 + [-1] * 7), KeywordExtractor(), RULES, None)
    now = _feedback(np.stack(steady + [a] * 30 + [b] * 25 + [other] * 20), "b")
    # The cluster-by-cluster path (last week's messages at hand, story scan off): test_changes covers the scan.
    rules = WeeklyRules(**{**RULES.__dict__, "story_scan": False})
    week = build_week("2026-W47", now, first.themes, _Fixed([0] * 40 + [1] * 30 + [2] * 25 + [3] * 20), KeywordExtractor(), rules, last)
    emerging = sorted(t.size for t in week.themes if t.emerging)
    assert emerging == [20, 55]  # the two pieces are one entry; the unrelated story is its own
    spill = next(t for t in week.themes if t.size == 55)
    assert spill.status == "emerging" and {week.members[f"b{i}"] for i in range(40, 95)} == {spill.theme_id}


def test_a_fading_story_whose_remnants_sit_in_two_themes_is_one_entry():
    e = np.eye(8, dtype=np.float32)
    battery = _unit_rows(np.stack([e[1] + 0.3 * e[2]]))[0]
    last = _feedback(np.stack([e[0]] * 40 + [battery] * 120), "a")
    first = build_week("2026-W46", last, [], _Fixed([0] * 40 + [1] * 120), KeywordExtractor(), RULES, None)
    # This week the battery complaints are nearly gone; what is left of them is nearest to two new
    # groups (phones and standby time) that both lost last week's battery volume to nothing.
    phones, standby = _unit_rows(np.stack([e[1] + 1.2 * e[3], e[1] + 1.2 * e[4]]))  # cosine 0.41: apart by similarity
    now = _feedback(np.stack([e[0]] * 40 + [phones] * 8 + [standby] * 7), "b")
    rules = WeeklyRules(**{**RULES.__dict__, "continuity_similarity": 0.99})
    week = build_week("2026-W47", now, first.themes, _Fixed([0] * 40 + [1] * 8 + [2] * 7), KeywordExtractor(), rules, last)
    fading = [t for t in week.themes if t.fading]
    assert len(fading) == 1, [(t.status, t.size, t.previous_size) for t in week.themes]
    assert fading[0].previous_size >= 100


def test_a_first_week_merges_no_story_and_flags_nothing():
    e = np.eye(4, dtype=np.float32)
    week = build_week("2026-W46", _feedback(np.stack([e[0]] * 20 + [e[1]] * 20), "a"), [], _Fixed([0] * 20 + [1] * 20),
                      KeywordExtractor(), RULES, None)
    assert week.first_week and sorted(t.size for t in week.themes) == [20, 20]
    assert not any(t.emerging or t.fading for t in week.themes)


def test_labels_read_as_a_phrase_not_a_word_list():
    assert theme_label(["支付页面打不开", "付款", "白屏"]) == "支付页面打不开"
    assert theme_label(["电池", "待机时间", "手机"]) == "电池、待机时间"
    assert theme_label([]) == ""
    extractor = KeywordExtractor()
    pay = ["今天支付页面打不开", "支付页面打不开，钱扣了", "昨晚支付页面打不开了", "支付页面一直转圈", "付款页面白屏"]
    other = ["衣服洗了就掉色", "这件衣服掉色严重", "掉色太厉害了", "衣服缩水还掉色"]
    words = extractor.keywords([pay, other], top=4)
    # The phrase wins over its words when it carries the theme; a word inside it is not repeated.
    assert words[0][0] == "支付页面打不开" and not {"支付", "页面", "支付页面"} & set(words[0])
    assert "掉色" in words[1][0]


def _theme(theme_id: str, keywords: list[str], mix: dict[str, int], size: int = 30) -> WeeklyTheme:
    return WeeklyTheme(theme_id, "2026-W47", size, 20, np.zeros(4, np.float32), keywords, ["引用一"], mix, {"logistics": size}, {"app": size})


def test_the_digest_can_group_theme_cards_by_polarity_without_changing_the_themes():
    from collections import Counter

    from pipelines.digest.model import Digest
    from pipelines.digest.render import render_html, render_markdown

    themes = [_theme("th-a", ["骑手超时"], {"negative": 25, "positive": 5}), _theme("th-b", ["口味很好"], {"positive": 28, "negative": 2}),
              _theme("th-c", ["包装盒"], {"negative": 10, "positive": 10, "neutral": 10})]
    d = Digest("2026-W47", datetime(2026, 11, 23, tzinfo=UTC), 90, 60, 0, [("2026-W47", Counter(negative=37))],
               Counter(logistics=90), Counter(logistics=60), Counter(app=90), themes, [], [])
    plain = render_html(d)
    assert "All top themes" in plain and "Mostly complaints" not in plain
    d.split_by_polarity = True
    html = render_html(d)
    heads = [html.index(h) for h in ("Mostly complaints (1)", "Mostly praise (1)", "Mixed (1)")]
    assert heads == sorted(heads) and "All top themes" not in html
    assert heads[0] < html.index("骑手超时", heads[0]) < heads[1] < html.index("口味很好", heads[1]) < heads[2] < html.index("包装盒", heads[2])
    md = render_markdown(d)
    assert md.index("### Mostly complaints (1)") < md.index("#### 骑手超时") < md.index("### Mostly praise (1)")
    assert [t.theme_id for t in d.themes] == ["th-a", "th-b", "th-c"]  # a view: the themes are untouched


@pytest.mark.model
def test_the_topic_branch_groups_by_subject_not_by_sentiment(feedback_model):
    from consumers.enricher.classifier import theme_vector

    texts = ["外卖送得太慢了，等了两个小时饭菜都凉了", "外卖送得很快，饭菜到的时候还是热的",
             "这本书印刷很差，错别字很多", "这本书印刷精美，内容也很好看"]
    predictions = feedback_model.predict(texts)
    v = np.stack([theme_vector(p) for p in predictions])
    sims = v @ v.T
    # Complaint and praise about delivery are closer than two complaints about different subjects.
    assert sims[0, 1] > sims[0, 2] and sims[2, 3] > sims[1, 3]
    # Only the theme embedding comes from the topic branch: the classifier's outputs are the served model's.
    from pipelines.enrichment import production_model
    from topics.settings import Settings

    served = production_model(Settings(), with_topic_branch=False).predict(texts)
    assert [p.sentiment for p in predictions] == [p.sentiment for p in served]
    assert np.allclose(predictions[0].embedding, served[0].embedding)
    assert not np.allclose(predictions[0].theme_embedding, served[0].theme_embedding)


def test_an_unflagged_theme_that_moved_a_lot_does_not_read_as_steady():
    from pipelines.digest.render import status_text

    theme = _theme("th-a", ["送餐"], {"negative": 30})
    theme.status = "steady"
    theme.previous_size, theme.size = 54, 133
    assert status_text(theme) == "up"
    theme.previous_size, theme.size = 54, 20
    assert status_text(theme) == "down"
    theme.previous_size, theme.size = 54, 60
    assert status_text(theme) == "steady"
