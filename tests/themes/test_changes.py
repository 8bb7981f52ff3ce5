"""Emerging / fading found on one tree of both weeks (consumers/themes/changes.py): nothing when the weeks
come from one distribution, one entry per story even when the tree holds it in two branches, and a story
inside a bigger cluster becomes its own theme in the week's digest."""

from __future__ import annotations

import numpy as np

from consumers.themes.changes import detect_stories, pooled_tree
from consumers.themes.keywords import KeywordExtractor
from consumers.themes.types import WeekFeedback
from consumers.themes.weekly import WeeklyRules, build_week, story_rules

DIM = 48


def _topics(rng: np.random.Generator, k: int) -> np.ndarray:
    return rng.normal(size=(k, DIM)).astype(np.float32)


def _around(rng: np.random.Generator, centre: np.ndarray, n: int, spread: float = 0.9) -> np.ndarray:
    """``n`` unit vectors scattered around ``centre`` (mean pairwise cosine ≈ 0.5: as coherent as a theme)."""
    c = centre / np.linalg.norm(centre)
    x = c + spread * rng.normal(size=(n, DIM)).astype(np.float32) / np.sqrt(DIM)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _week(rng: np.random.Generator, topics: np.ndarray, sizes: list[int]) -> np.ndarray:
    return np.vstack([_around(rng, t, n) for t, n in zip(topics, sizes)])


RULES = story_rules(WeeklyRules())  # the settings' defaults


def test_two_weeks_from_one_distribution_have_no_story():
    for seed in (1, 2, 3):
        rng = np.random.default_rng(seed)
        topics = _topics(rng, 25)
        sizes = rng.integers(10, 120, size=25).tolist()
        a, b = _week(rng, topics, sizes), _week(rng, topics, rng.poisson(sizes).tolist())
        assert detect_stories(a, b, RULES) == [], seed


def test_repeated_identical_messages_are_not_a_story():
    # 40 copies of one text in each week: in input order they would make a subtree of last week's alone.
    rng = np.random.default_rng(0)
    topics = _topics(rng, 6)
    same = np.repeat(_around(rng, topics[0], 1), 40, axis=0)
    a = np.vstack([same, _week(rng, topics[1:], [50] * 5)])
    b = np.vstack([same, _week(rng, topics[1:], [50] * 5)])
    assert detect_stories(a, b, RULES) == []


def test_a_story_in_two_branches_is_one_entry_and_a_fading_one_is_found():
    rng = np.random.default_rng(4)
    topics = _topics(rng, 12)
    background = [60] * 12
    # The growing story: two close directions (a spilled-coffee and a spilled-soup branch), 5 + 5 → 60 + 60.
    spill = topics[0] * 0.2 + rng.normal(size=DIM).astype(np.float32)
    coffee, soup = spill + 0.6 * rng.normal(size=DIM), spill + 0.6 * rng.normal(size=DIM)
    fade = rng.normal(size=DIM).astype(np.float32)  # a complaint going 120 → 10
    a = np.vstack([_week(rng, topics, background), _around(rng, coffee, 5, 0.5), _around(rng, soup, 5, 0.5), _around(rng, fade, 120)])
    b = np.vstack([_week(rng, topics, background), _around(rng, coffee, 60, 0.5), _around(rng, soup, 60, 0.5), _around(rng, fade, 10)])
    stories = detect_stories(a, b, RULES)
    kinds = sorted(s.kind for s in stories)
    assert kinds == ["emerging", "fading"], [(s.kind, s.sizes) for s in stories]
    grow = next(s for s in stories if s.kind == "emerging")
    n_bg = sum(background)
    assert (grow.now >= n_bg).sum() >= 110 and (grow.now < n_bg).sum() <= 10  # both branches, little background
    gone = next(s for s in stories if s.kind == "fading")
    assert (gone.before >= n_bg + 10).sum() >= 100


def test_the_tree_over_micro_clusters_gives_every_row_a_leaf():
    rng = np.random.default_rng(5)
    x = _week(rng, _topics(rng, 8), [400] * 8)
    leaf, children, similarity, leaves = pooled_tree(x, exact_up_to=1000, micro_clusters=50, seed=1)
    assert len(leaf) == len(x) and leaf.max() < leaves and len(children) == leaves - 1
    assert similarity[0] >= similarity[-1]  # merged from the most similar pair down


class _Fixed:
    def __init__(self, labels):
        self.labels = np.asarray(labels)

    def cluster(self, embeddings):
        return self.labels


def _feedback(vectors: np.ndarray, texts: list[str], prefix: str) -> WeekFeedback:
    n = len(vectors)
    return WeekFeedback([f"{prefix}{i}" for i in range(n)], vectors, texts, ["app"] * n, ["logistics"] * n,
                        ["negative"] * n, [-0.5] * n, [None] * n)


def test_a_story_inside_a_bigger_cluster_is_its_own_flagged_theme_and_a_faded_one_is_labelled_by_what_faded():
    rng = np.random.default_rng(7)
    topics = _topics(rng, 4)
    delivery, spill, cold = topics[0], topics[0] * 0.6 + topics[1], topics[2]
    rules = WeeklyRules(continuity_similarity=0.39, story_merge_similarity=0.4, story_coherence=0.2, min_theme_size=3)
    kw = KeywordExtractor()
    # Last week: delivery 80, spills 10, cold food 100; this week: delivery 80, spills 90, cold food 8.
    v1 = np.vstack([_around(rng, delivery, 80), _around(rng, spill, 10), _around(rng, cold, 100)])
    t1 = ["骑手送餐太慢"] * 80 + ["汤洒了一袋子"] * 10 + ["饭菜送到都凉了"] * 100
    w1 = _feedback(v1, t1, "a")
    first = build_week("2026-W46", w1, [], _Fixed([0] * 90 + [1] * 100), kw, rules, None)
    v2 = np.vstack([_around(rng, delivery, 80), _around(rng, spill, 90), _around(rng, cold, 8)])
    t2 = ["骑手送餐太慢"] * 80 + ["汤洒了一袋子"] * 90 + ["饭菜送到都凉了"] * 8
    # This week's clustering keeps spills inside the delivery cluster, and the cold-food remnant with it too.
    week = build_week("2026-W47", _feedback(v2, t2, "b"), first.themes, _Fixed([0] * 178), kw, rules, w1)
    flagged = [t for t in week.themes if t.emerging or t.fading]
    assert sorted(t.status for t in flagged) == ["emerging", "fading"], [(t.status, t.size, t.previous_size) for t in week.themes]
    grow = next(t for t in flagged if t.emerging)
    spill_ids = {f"b{i}" for i in range(80, 170)}
    mine = {e for e, th in week.members.items() if th == grow.theme_id}
    assert len(mine & spill_ids) >= 80 and len(mine - spill_ids) <= 5 and grow.previous_size <= 15
    faded = next(t for t in flagged if t.fading)
    assert faded.previous_size >= 90 and faded.size <= 10
    assert "饭菜" in faded.label and faded.quotes[0] == "饭菜送到都凉了"  # what faded, not what is left beside it
    assert faded.previous_sentiment_mix == {"negative": faded.previous_size}
    # The rest of the delivery cluster is a plain theme, not flagged.
    assert any(t.size >= 70 and t.status in {"steady", "new"} for t in week.themes)
