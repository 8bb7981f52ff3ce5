"""Lexical bursts (consumers/themes/bursts.py): a phrase whose messages grow inside a diffuse cluster, where no
node of the embedding's tree is the story, becomes one emerging theme; a small rise does not; a phrase whose
messages a flagged story already holds is not listed again."""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np

from consumers.themes.bursts import detect_bursts
from consumers.themes.changes import Story
from consumers.themes.keywords import KeywordExtractor
from consumers.themes.types import WeekFeedback
from consumers.themes.weekly import WeeklyRules, build_week, burst_rules

DIM = 32
# Words of ordinary delivery reviews: every text is four of them, both weeks alike.
WORDS = ("外卖 骑手 商家 米饭 送餐 小时 包装 餐盒 订单 味道 分量 电话 地址 配送 速度 饮料 筷子 鸡肉 面条 价格 "
         "门口 楼下 中午 晚上 师傅 店家 老板 菜品 口味 红烧 牛肉 青菜 豆腐 辣椒 米线 披萨 汉堡 薯条 可乐 奶茶").split()
STORY = "少送了一份"
KEYWORDS = KeywordExtractor()
RULES = burst_rules(WeeklyRules())  # the settings' defaults


class _OneCluster:
    """Every message in one cluster: the diffuse delivery cluster the story hides in."""

    def cluster(self, embeddings):
        return np.zeros(len(embeddings), dtype=np.int64)


def _texts(rng: random.Random, n: int, story: int) -> list[str]:
    texts = ["".join(rng.sample(WORDS, 4)) for _ in range(n)]
    for i in range(story):  # the story's messages say it among the usual words
        texts[i] = "".join(rng.sample(WORDS, 2)) + STORY + rng.choice(WORDS)
    return texts


def _vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    # One diffuse cloud: story and other messages alike to the embedding.
    x = np.ones(DIM, np.float32) + 0.8 * rng.normal(size=(n, DIM)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _weeks(story_before: int, story_now: int, seed: int = 0, n: int = 600):
    rng, nrng = random.Random(seed), np.random.default_rng(seed)
    return _texts(rng, n, story_before), _texts(rng, n, story_now), _vectors(nrng, n), _vectors(nrng, n)


def _phrases(texts: list[str]) -> list[set[str]]:
    return [KEYWORDS.phrases(t) for t in texts]


def _feedback(texts: list[str], vectors: np.ndarray, prefix: str) -> WeekFeedback:
    n = len(texts)
    return WeekFeedback([f"{prefix}{i}" for i in range(n)], vectors, texts, ["app"] * n, ["logistics"] * n,
                        ["negative"] * n, [-0.5] * n, [None] * n)


def test_phrases_are_short_runs_without_stop_or_opinion_words():
    got = KEYWORDS.phrases("汤洒了，不错")
    assert {"汤洒", "洒了", "汤洒了"} <= got
    assert "不错" not in got and "了" not in got  # an opinion word; single characters are not phrases


def test_a_phrase_growing_inside_a_diffuse_cluster_is_carved_out_and_flagged_emerging():
    t1, t2, e1, e2 = _weeks(5, 60)
    bursts = detect_bursts(_phrases(t1), _phrases(t2), e1, e2, [], RULES)
    assert [s.kind for s in bursts] == ["emerging"]
    assert sorted(bursts[0].now.tolist()) == list(range(60)) and sorted(bursts[0].before.tolist()) == list(range(5))
    # Through the week: one theme of its own, flagged emerging, 5 → 60; the rest of the cluster is not flagged.
    first = build_week("2026-W46", _feedback(t1, e1, "a"), [], _OneCluster(), KEYWORDS, WeeklyRules(), None)
    week = build_week("2026-W47", _feedback(t2, e2, "b"), first.themes, _OneCluster(), KEYWORDS, WeeklyRules(), _feedback(t1, e1, "a"))
    flagged = [t for t in week.themes if t.emerging or t.fading]
    assert [(t.emerging, t.size, t.previous_size) for t in flagged] == [(True, 60, 5)]
    assert all(week.members[f"b{i}"] == flagged[0].theme_id for i in range(60))
    # Without the burst test the story stays inside the cluster, unflagged.
    off = WeeklyRules(burst_test=False)
    week = build_week("2026-W47", _feedback(t2, e2, "b"), first.themes, _OneCluster(), KEYWORDS, off, _feedback(t1, e1, "a"))
    assert not any(t.emerging or t.fading for t in week.themes)


def test_a_small_rise_is_not_a_burst():
    t1, t2, e1, e2 = _weeks(4, 9)
    assert detect_bursts(_phrases(t1), _phrases(t2), e1, e2, [], RULES) == []


def test_a_falling_phrase_is_fading():
    t1, t2, e1, e2 = _weeks(70, 5)
    bursts = detect_bursts(_phrases(t1), _phrases(t2), e1, e2, [], RULES)
    assert [(s.kind, s.sizes) for s in bursts] == [("fading", (70, 5))]


def test_two_weeks_alike_have_no_burst():
    for seed in (1, 2, 3):
        t1, t2, e1, e2 = _weeks(20, 20, seed)
        assert detect_bursts(_phrases(t1), _phrases(t2), e1, e2, [], RULES) == [], seed


def test_a_phrase_an_emerging_story_holds_is_not_listed_again():
    t1, t2, e1, e2 = _weeks(5, 60)
    story = Story("emerging", np.arange(5), np.arange(60), 1e-20)
    got = detect_bursts(_phrases(t1), _phrases(t2), e1, e2, [story], RULES)
    assert len(got) == 1 and got[0].sizes == (5, 60)


def test_a_burst_whose_phrase_a_story_of_its_direction_says_joins_that_story():
    # The story (the embedding's) holds 25 of this week's 60 messages that say 少送; the 35 it missed burst on
    # their own: they are that story's, one entry, not two.
    t1, t2, e1, e2 = _weeks(5, 60)
    story = Story("emerging", np.arange(0), np.arange(25), 1e-12)
    got = detect_bursts(_phrases(t1), _phrases(t2), e1, e2, [story], RULES)
    assert len(got) == 1 and sorted(got[0].now.tolist()) == list(range(60))
    assert story.sizes == (0, 25)  # the caller's story is not changed


def _at_similarity(rng: np.random.Generator, n: int, similarity: float) -> np.ndarray:
    """``n`` unit vectors around a direction at ``similarity`` to the diffuse cloud's centre (all ones)."""
    centre = np.ones(DIM, np.float32) / np.sqrt(DIM)
    side = rng.normal(size=DIM).astype(np.float32)
    side -= (side @ centre) * centre
    axis = similarity * centre + np.sqrt(1 - similarity**2) * side / np.linalg.norm(side)
    x = axis + 0.05 * rng.normal(size=(n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_a_burst_stays_apart_from_a_story_that_does_not_say_its_phrase_nor_sits_as_close_as_one_problem():
    # Another growing story of 40 messages, none of them saying 少送, whose centroid is as close to the burst's as
    # the payment story's is to 没送 complaints (0.48: both complaints): the burst is its own entry.
    t1, t2, e1, e2 = _weeks(5, 60)
    e2[500:540] = _at_similarity(np.random.default_rng(1), 40, 0.48)
    other = Story("emerging", np.arange(0), np.arange(500, 540), 1e-12)
    got = detect_bursts(_phrases(t1), _phrases(t2), e1, e2, [other], RULES)
    assert [s.sizes for s in got] == [(0, 40), (5, 60)]


def test_a_burst_as_close_to_a_story_of_its_direction_as_one_problems_pieces_joins_it():
    # The scan's fading piece (40 → 10 messages that never say 少送) and the 少送 burst (80 → 5) sit in one region of
    # the embedding (one problem told in other words: 没送 beside 少送): one entry, not two, though neither holds
    # the other's phrase.
    t1, t2, e1, e2 = _weeks(80, 5)
    region = _at_similarity(np.random.default_rng(2), 135, 0.3)  # one region, away from the cloud
    e1[:80], e2[:5], e1[500:540], e2[500:510] = region[:80], region[80:85], region[85:125], region[125:]
    piece = Story("fading", np.arange(500, 540), np.arange(500, 510), 1e-8)
    got = detect_bursts(_phrases(t1), _phrases(t2), e1, e2, [piece], RULES)
    assert [(s.kind, s.sizes) for s in got] == [("fading", (120, 15))]
    assert piece.sizes == (40, 10)  # the caller's story is not changed
    # Without the rule (or with its bar above their similarity): two fading entries of one problem.
    apart = detect_bursts(_phrases(t1), _phrases(t2), e1, e2, [piece], replace(RULES, story_similarity=None))
    assert sorted(s.sizes for s in apart) == [(40, 10), (80, 5)]
