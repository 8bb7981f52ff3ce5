"""Weekly clustering: exact average linkage, its scalable form, noise, HDBSCAN; continuity matching."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from consumers.themes.clustering import AgglomerativeClusterer, HdbscanClusterer, average_linkage
from consumers.themes.types import WeeklyTheme
from consumers.themes.weekly import match_previous


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


def test_hdbscan_clusterer_finds_blobs():
    x, labels = blobs(60, 3, 0.3, seed=6)
    got = HdbscanClusterer(min_cluster_size=10, pca_dims=8).cluster(x)
    kept = got >= 0
    assert kept.mean() > 0.8 and adjusted_rand_score(labels[kept], got[kept]) > 0.95


def _weekly(theme_id: str, centroid: np.ndarray, size: int = 10) -> WeeklyTheme:
    return WeeklyTheme(theme_id, "2026-W46", size, 0, centroid, [], [], {}, {}, {})


def test_continuity_is_greedy_one_to_one_above_the_threshold():
    e = np.eye(4, dtype=np.float32)
    previous = [_weekly("old-a", e[0]), _weekly("old-b", e[1])]
    now = [e[0] * 0.99 + e[2] * 0.01, e[0] * 0.9 + e[3] * 0.1, e[2]]
    assert match_previous(now, previous, 0.95) == [0, None, None]  # one old theme continues once
    assert match_previous(now, previous, 0.999999) == [None, None, None]
    assert match_previous([], previous, 0.9) == [] and match_previous(now, [], 0.9) == [None] * 3
