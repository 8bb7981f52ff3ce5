"""Weekly clustering: exact average linkage, its scalable form, noise; merging, continuity, emerging/fading."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from consumers.themes.clustering import AgglomerativeClusterer, average_linkage
from consumers.themes.keywords import KeywordExtractor
from consumers.themes.types import WeekFeedback, WeeklyTheme
from consumers.themes.weekly import (
    WeeklyRules,
    build_week,
    is_emerging,
    is_fading,
    match_previous,
    merge_similar,
    nearest_counts,
)


def blobs(n_per: int, centres: int, spread: float, dim: int = 48, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(centres, dim))
    labels = np.repeat(np.arange(centres), n_per)
    x = base[labels] + rng.normal(scale=spread, size=(len(labels), dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels


def test_weighted_linkage_over_points_equals_scipy_average_linkage():
    x, _ = blobs(15, 4, 0.9, seed=1)
    for threshold in (0.3, 0.5, 0.7):
        ours = average_linkage(x, np.ones(len(x)), threshold)
        exact = AgglomerativeClusterer(threshold, min_size=1)._exact(x)
        assert adjusted_rand_score(ours, exact) == pytest.approx(1.0)


def test_group_means_give_the_mean_pairwise_similarity():
    a, _ = blobs(7, 1, 1.0, seed=2)
    b, _ = blobs(9, 1, 1.0, seed=3)
    assert float(a.mean(0) @ b.mean(0)) == pytest.approx(float((a @ b.T).mean()), abs=1e-6)


def test_micro_cluster_path_finds_the_topics_at_scale():
    x, labels = blobs(1500, 5, 0.35, seed=4)
    clusterer = AgglomerativeClusterer(0.5, micro_clusters=60, exact_up_to=2000, sample_size=3000)
    got = clusterer.cluster(x)
    assert len(x) > clusterer.exact_up_to
    assert set(got.tolist()) == {0, 1, 2, 3, 4}
    assert adjusted_rand_score(labels, got) > 0.99


def test_small_groups_become_noise_and_labels_run_by_size():
    x, _ = blobs(10, 2, 0.2, seed=5)
    outlier = np.eye(48, dtype=np.float32)[:1]
    got = AgglomerativeClusterer(0.8, min_size=3).cluster(np.vstack([x[:10], x[10:14], outlier]))
    assert got.tolist() == [0] * 10 + [1] * 4 + [-1]
    assert AgglomerativeClusterer(0.8).cluster(np.zeros((0, 48), np.float32)).shape == (0,)


def _weekly(theme_id: str, centroid: np.ndarray, size: int = 10) -> WeeklyTheme:
    return WeeklyTheme(theme_id, "2026-W46", size, 0, centroid, [], [], {}, {}, {})


def test_continuity_is_greedy_one_to_one_above_the_threshold():
    e = np.eye(4, dtype=np.float32)
    previous = [_weekly("old-a", e[0]), _weekly("old-b", e[1])]
    now = [e[0] * 0.99 + e[2] * 0.01, e[0] * 0.9 + e[3] * 0.1, e[2]]
    assert match_previous(now, previous, 0.95) == [0, None, None]  # one old theme continues once
    assert match_previous(now, previous, 0.999999) == [None, None, None]
    assert match_previous([], previous, 0.9) == [] and match_previous(now, [], 0.9) == [None] * 3


def test_clusters_on_one_topic_are_merged_into_one_entry():
    e = np.eye(4, dtype=np.float32)
    emb = np.stack([e[0], e[0] * 0.9 + e[1] * 0.1, e[0] * 0.95 + e[1] * 0.05, e[2], e[2]])
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    merged = merge_similar(emb, [np.array([0]), np.array([1, 2]), np.array([3, 4])], 0.95)
    assert sorted(map(sorted, (g.tolist() for g in merged))) == [[0, 1, 2], [3, 4]]
    assert len(merge_similar(emb, [np.array([0]), np.array([3])], 0.95)) == 2


def test_a_small_change_is_not_news_and_a_real_drop_is():
    rules = WeeklyRules(emerging_min_volume=10, emerging_growth=2.0, fading_min_volume=20, fading_ratio=0.5, significance=0.001)
    assert not is_fading(0, 3, 1.0, rules)  # 3 → 0: below the minimum volume
    assert is_fading(15, 130, 1.0, rules)  # 130 → 15
    assert not is_fading(18, 25, 1.0, rules)  # not half
    assert is_emerging(150, 8, 1.0, rules)
    assert not is_emerging(7, 0, 1.0, rules)  # new but below the minimum volume
    assert not is_emerging(12, 5, 1.0, rules)  # 5 → 12 (p ≈ 0.006): not significant enough
    assert not is_emerging(110, 60, 1.0, rules) and is_emerging(120, 25, 1.0, rules)  # growth below 2×
    assert not is_emerging(20, 10, 2.0, rules)  # the whole week doubled: expected 20


def test_nearest_counts_take_the_nearest_centroid_above_the_floor():
    e = np.eye(3, dtype=np.float32)
    assert nearest_counts(np.stack([e[0], e[0], e[1], e[2]]), [e[0], e[1]], 0.5).tolist() == [2, 1]


class _Fixed:
    def __init__(self, labels):
        self.labels = np.asarray(labels)

    def cluster(self, embeddings):
        return self.labels


def _feedback(vectors: np.ndarray, prefix: str, live: list | None = None) -> WeekFeedback:
    n = len(vectors)
    return WeekFeedback([f"{prefix}{i}" for i in range(n)], vectors.astype(np.float32), ["外卖送餐太慢"] * n, ["app"] * n,
                        ["logistics"] * n, ["negative"] * n, [-0.5] * n, live or [None] * n)


def test_continuity_only_by_similarity_and_a_first_week_flags_nothing():
    e = np.eye(6, dtype=np.float32)
    rules = WeeklyRules(continuity_similarity=0.9, merge_centroid_similarity=0.99, member_similarity=0.5,
                        emerging_min_volume=10, fading_min_volume=20)
    kw = KeywordExtractor()
    w1 = _feedback(np.stack([e[0]] * 30 + [e[1]] * 3), "a", ["th-live-x"] * 33)
    first = build_week("2026-W46", w1, [], _Fixed([0] * 30 + [1] * 3), kw, rules, None)
    assert first.first_week and {t.status for t in first.themes} == {"first_week"}
    assert not any(t.emerging or t.fading for t in first.themes)
    old_big = next(t.theme_id for t in first.themes if t.size == 30)
    # Week 2: the big theme continues (same direction); a new topic whose members sat in last
    # week's live theme gets no copied id or size from last week.
    w2 = _feedback(np.stack([e[0]] * 28 + [e[2]] * 12), "b", ["th-live-x"] * 40)
    second = build_week("2026-W47", w2, first.themes, _Fixed([0] * 28 + [1] * 12), kw, rules, w1)
    by_size = {t.size: t for t in second.themes if t.size}
    assert by_size[28].theme_id == old_big and by_size[28].status == "steady"
    new = by_size[12]
    assert new.theme_id not in {t.theme_id for t in first.themes} and new.previous_size == 0
    assert new.emerging and new.status == "emerging"
    # The 3-message theme of last week is gone: listed, but not fading news.
    gone = [t for t in second.themes if t.size == 0]
    assert len(gone) == 1 and gone[0].status == "gone" and not gone[0].fading


def test_last_weeks_messages_without_a_snapshot_still_give_a_comparison():
    e = np.eye(4, dtype=np.float32)
    rules = WeeklyRules(merge_centroid_similarity=0.99, member_similarity=0.5, emerging_min_volume=10)
    last = _feedback(np.stack([e[0]] * 30), "a")
    week = build_week("2026-W47", _feedback(np.stack([e[0]] * 30 + [e[1]] * 15), "b"), [], _Fixed([0] * 30 + [1] * 15), KeywordExtractor(), rules, last)
    assert not week.first_week
    status = {t.size: t.status for t in week.themes}
    assert status == {30: "steady", 15: "emerging"}
