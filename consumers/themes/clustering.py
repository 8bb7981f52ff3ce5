"""Weekly clustering of embeddings into themes (pure; the clusterer is injected).

``AgglomerativeClusterer`` (the default, chosen by measurement: docs/themes.md)
is exact average linkage on cosine similarity, made to scale: above a few
thousand messages it first summarises the week into k-means micro-clusters,
then merges those by weighted average linkage. The mean pairwise cosine
between two groups of unit vectors equals the dot product of their
(un-normalised) means, so merging micro-clusters by their means is the same
average linkage the messages themselves would get. Merging stops at the
calibrated ``merge_similarity``; groups smaller than ``min_size`` are noise (-1).

HDBSCAN (on a 32-d PCA projection) was measured against it and removed: on the two-week
benchmark it left 54–75 % of messages as noise, purity 0.10–0.20 (docs/themes.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np


class Clusterer(Protocol):
    def cluster(self, embeddings: np.ndarray) -> np.ndarray:
        """One label per row; -1 marks noise."""


def average_linkage_merges(means: np.ndarray, counts: np.ndarray) -> Iterator[tuple[int, int, float]]:
    """Weighted average linkage (UPGMA) over groups given by their mean vectors and sizes: each merge in
    order as (i, j, similarity), group ``j`` joining group ``i`` (which keeps its index)."""
    m = len(means)
    means = np.array(means, dtype=np.float64)
    counts = np.array(counts, dtype=np.float64)
    sims = means @ means.T
    np.fill_diagonal(sims, -np.inf)
    active = np.ones(m, dtype=bool)
    while active.sum() > 1:
        i, j = divmod(int(np.argmax(sims)), m)
        yield i, j, float(sims[i, j])
        total = counts[i] + counts[j]
        means[i] = (counts[i] * means[i] + counts[j] * means[j]) / total
        counts[i] = total
        active[j] = False
        row = means @ means[i]
        row[~active] = -np.inf
        row[i] = -np.inf
        sims[i, :] = row
        sims[:, i] = row
        sims[j, :] = -np.inf
        sims[:, j] = -np.inf


def average_linkage(means: np.ndarray, counts: np.ndarray, stop_below: float) -> np.ndarray:
    """Average linkage until the most similar pair is below ``stop_below``: the merged group index of every input group."""
    owner = np.arange(len(means))
    for i, j, similarity in average_linkage_merges(means, counts):
        if similarity < stop_below:
            break
        owner[owner == j] = i
    _, labels = np.unique(owner, return_inverse=True)
    return labels


def group_sums(labels: np.ndarray, embeddings: np.ndarray, groups: int) -> np.ndarray:
    """Sum of the rows of each group (float64), as one sparse product: ``np.add.at`` over 200k rows of 384
    takes tens of seconds."""
    from scipy.sparse import csr_matrix

    labels = np.asarray(labels, dtype=np.int64)
    onehot = csr_matrix((np.ones(len(labels)), (labels, np.arange(len(labels)))), shape=(groups, len(labels)))
    return np.asarray(onehot @ np.asarray(embeddings, dtype=np.float64))


def _relabel_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Noise for groups under ``min_size``; the rest numbered 0.. by decreasing size."""
    out = np.full(len(labels), -1, dtype=np.int64)
    values, counts = np.unique(labels[labels >= 0], return_counts=True)
    order = [v for v, c in sorted(zip(values, counts), key=lambda vc: (-vc[1], vc[0])) if c >= min_size]
    for new, old in enumerate(order):
        out[labels == old] = new
    return out


class AgglomerativeClusterer:
    def __init__(
        self,
        merge_similarity: float,
        micro_clusters: int = 300,
        min_size: int = 3,
        seed: int = 13,
        exact_up_to: int = 2000,
        sample_size: int = 20000,
    ):
        self.merge_similarity = merge_similarity
        self.sample_size = sample_size
        self.micro_clusters = micro_clusters
        self.min_size = min_size
        self.seed = seed
        self.exact_up_to = exact_up_to

    def cluster(self, embeddings: np.ndarray) -> np.ndarray:
        emb = np.asarray(embeddings, dtype=np.float32)
        n = len(emb)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        if n <= self.exact_up_to:
            return _relabel_small(self._exact(emb), self.min_size)
        micro = self._micro_clusters(emb)
        groups = np.unique(micro)
        counts = np.bincount(micro, minlength=len(groups)).astype(np.float64)
        sums = group_sums(micro, emb, len(groups))
        merged = average_linkage(sums / counts[:, None], counts, self.merge_similarity)
        return _relabel_small(merged[micro], self.min_size)


    def _exact(self, emb: np.ndarray) -> np.ndarray:
        """Plain average linkage on the messages (scipy), cut at the merge similarity."""
        from scipy.cluster.hierarchy import fcluster, linkage

        if len(emb) == 1:
            return np.zeros(1, dtype=np.int64)
        tree = linkage(emb.astype(np.float64), method="average", metric="cosine")
        return fcluster(tree, t=1.0 - self.merge_similarity, criterion="distance").astype(np.int64)

    def _micro_clusters(self, emb: np.ndarray) -> np.ndarray:
        """k-means fitted on a sample (bounded cost), then every message to its most similar centre."""
        from sklearn.cluster import KMeans

        rng = np.random.default_rng(self.seed)
        k = min(self.micro_clusters, len(emb) // 2)
        sample = emb[rng.choice(len(emb), min(len(emb), self.sample_size), replace=False)]
        # Random init: k-means++ seeding costs ~15x the Lloyd iterations here and buys nothing for micro-clusters.
        centres = KMeans(n_clusters=k, init="random", random_state=self.seed, n_init=1, max_iter=30).fit(sample).cluster_centers_
        centres = (centres / np.maximum(np.linalg.norm(centres, axis=1, keepdims=True), 1e-12)).astype(np.float32)
        labels = np.empty(len(emb), dtype=np.int64)
        for start in range(0, len(emb), 16384):
            labels[start : start + 16384] = np.argmax(emb[start : start + 16384] @ centres.T, axis=1)
        return np.unique(labels, return_inverse=True)[1]
