"""What changed between two weeks, found on both weeks together (pure).

Each week is clustered on its own for the digest's themes, but two separate clusterings do not cut the
space the same way: a theme's count last week and this week then differ by where the boundaries fell,
and a planted 130 → 15 story cut in pieces one week and whole the other reads as several small changes.
So change is measured on **one tree for both weeks**:

1. The two weeks' vectors are pooled and clustered week-blind by average linkage (the weekly clusterer's
   linkage; exact up to ``exact_up_to`` messages, above that over k-means micro-clusters). Every node of
   the tree whose members are as coherent as a theme (mean pairwise similarity ≥ ``coherence``, the
   clusterer's merge threshold) is a candidate story, with ``a`` messages last week and ``b`` this week.
2. The clustering never saw the weeks, so if nothing changed a node's split between them is binomial:
   b ~ Binomial(a + b, n₂ / (n₁ + n₂)) — the exact conditional test for two Poisson rates, which also
   counts last week's own noise (a test against last week's count as if it were exact does not).
   **Emerging**: b ≥ ``emerging_min_volume``, b ≥ ``emerging_growth`` × a · n₂/n₁ (at least 1) and the
   upper-tail p < ``significance``. **Fading**: a ≥ ``fading_min_volume``, b ≤ ``fading_ratio`` × a · n₂/n₁
   and the lower-tail p < ``significance``.
3. The most significant nodes are taken first; a node inside or above a taken one is not taken again
   (one node per region of the tree).
4. One story, one entry: a story the tree holds in several branches (spilled coffee, spilled soup)
   shows as several taken nodes changing the same way; nodes of one direction whose centroids (over
   both weeks' members) reach ``merge_similarity`` are merged (greedy, centroids recomputed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Story:
    """A significant change: which of last week's (``before``) and this week's (``now``) messages it holds."""

    kind: str  # emerging | fading
    before: np.ndarray  # row indices into last week's embeddings
    now: np.ndarray  # row indices into this week's embeddings
    p_value: float

    @property
    def sizes(self) -> tuple[int, int]:
        return len(self.before), len(self.now)


@dataclass(frozen=True)
class StoryRules:
    """Built from the weekly settings (``consumers.themes.weekly.story_rules``), which hold the defaults."""

    coherence: float
    significance: float
    emerging_growth: float
    emerging_min_volume: int
    fading_ratio: float
    fading_min_volume: int
    merge_similarity: float | None
    micro_clusters: int
    seed: int
    exact_up_to: int = 4000  # above this many messages the tree is built on k-means micro-clusters


def _units(m: np.ndarray) -> np.ndarray:
    return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)


def pooled_tree(embeddings: np.ndarray, exact_up_to: int, micro_clusters: int, seed: int):
    """Average-linkage tree over ``embeddings``: (leaf of each row, children (left, right) and mean
    pairwise similarity of each merge node, number of leaves). Exact on the rows up to ``exact_up_to``,
    else on k-means micro-clusters merged by weighted average linkage (the dot product of group means)."""
    emb = np.asarray(embeddings, dtype=np.float32)
    n = len(emb)
    if n <= exact_up_to:
        from scipy.cluster.hierarchy import linkage

        if n < 2:
            return np.zeros(n, dtype=np.int64), np.zeros((0, 2), dtype=np.int64), np.zeros(0), n
        # Rows in a random order: ties (repeated texts) are then broken blind to the week, as the null needs
        # (in input order a run of identical messages from last week would be a subtree of last week's alone).
        order = np.random.default_rng(seed).permutation(n)
        z = linkage(emb[order].astype(np.float64), method="average", metric="cosine")
        return np.argsort(order), z[:, :2].astype(np.int64), 1.0 - z[:, 2], n
    from consumers.themes.clustering import AgglomerativeClusterer, average_linkage_merges, group_sums

    leaf = AgglomerativeClusterer(0.0, micro_clusters, 1, seed)._micro_clusters(emb)
    m = int(leaf.max()) + 1
    counts = np.bincount(leaf, minlength=m).astype(np.float64)
    sums = group_sums(leaf, emb, m)
    means = sums / counts[:, None]
    node = np.arange(m)  # the tree node each active group is
    children, similarity = [], []
    for i, j, sim in average_linkage_merges(means, counts):
        children.append((node[i], node[j]))
        similarity.append(sim)
        node[i] = m + len(children) - 1
    return leaf, np.asarray(children, dtype=np.int64).reshape(-1, 2), np.asarray(similarity), m


def change_p_values(a: np.ndarray, b: np.ndarray, n1: int, n2: int, rules) -> tuple[np.ndarray, np.ndarray]:
    """For groups with ``a`` messages last week and ``b`` this week (of ``n1`` and ``n2``): the exact binomial
    p-value of growth and of fall, 1.0 where the emerging / fading volume and growth rules already rule it out.
    ``rules``: anything with those rules' fields (StoryRules, bursts.BurstRules)."""
    from scipy.stats import binom

    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    p0, scale = n2 / (n1 + n2), n2 / n1
    grow = (b >= rules.emerging_min_volume) & (b >= rules.emerging_growth * np.maximum(a * scale, 1.0))
    fall = (a >= rules.fading_min_volume) & (b <= rules.fading_ratio * a * scale)
    return np.where(grow, binom.sf(b - 1, a + b, p0), 1.0), np.where(fall, binom.cdf(b, a + b, p0), 1.0)


def detect_stories(previous: np.ndarray, current: np.ndarray, rules: StoryRules) -> list[Story]:
    """Significant changes between last week's (``previous``) and this week's (``current``) unit vectors,
    most significant first (module docstring)."""
    n1, n2 = len(previous), len(current)
    if not n1 or not n2:
        return []
    pooled = np.vstack([np.asarray(previous, np.float32), np.asarray(current, np.float32)])
    week = np.r_[np.zeros(n1, np.int64), np.ones(n2, np.int64)]
    leaf, children, similarity, leaves = pooled_tree(pooled, rules.exact_up_to, rules.micro_clusters, rules.seed)
    nodes = leaves + len(children)
    a = np.zeros(nodes, np.int64)
    b = np.zeros(nodes, np.int64)
    np.add.at(a, leaf[week == 0], 1)
    np.add.at(b, leaf[week == 1], 1)
    parent = np.full(nodes, -1, np.int64)
    for k, (left, right) in enumerate(children):
        a[leaves + k] = a[left] + a[right]
        b[leaves + k] = b[left] + b[right]
        parent[left] = parent[right] = leaves + k
    inner = leaves + np.flatnonzero(similarity >= rules.coherence)
    p_grow, p_fall = change_p_values(a[inner], b[inner], n1, n2, rules)
    candidates: list[tuple[float, int, str]] = []
    for node, pg, pf in zip(inner.tolist(), p_grow.tolist(), p_fall.tolist()):
        if pg < rules.significance:
            candidates.append((pg, node, "emerging"))
        if pf < rules.significance:
            candidates.append((pf, node, "fading"))
    candidates.sort(key=lambda c: (c[0], c[1]))
    kids = {leaves + k: (int(left), int(right)) for k, (left, right) in enumerate(children)}

    def below(node: int) -> list[int]:
        out, stack = [], [node]
        while stack:
            x = stack.pop()
            out.append(x)
            stack.extend(kids.get(x, ()))
        return out

    taken: list[tuple[float, int, str]] = []
    blocked: set[int] = set()
    for p, node, kind in candidates:
        if node in blocked:
            continue
        taken.append((p, node, kind))
        x = node
        while x != -1:  # the nodes above it
            blocked.add(x)
            x = int(parent[x])
        blocked.update(below(node))
    leaf_rows: dict[int, list[int]] = {}
    for row, lf in enumerate(leaf.tolist()):
        leaf_rows.setdefault(lf, []).append(row)
    groups = []
    for p, node, kind in taken:
        rows = np.asarray(sorted(r for x in below(node) if x < leaves for r in leaf_rows.get(x, ())), dtype=np.int64)
        groups.append((kind, rows, p))
    return merge_by_direction(pooled, n1, groups, rules.merge_similarity)


def merge_by_direction(pooled: np.ndarray, n1: int, groups: list[tuple[str, np.ndarray, float]],
                       threshold: float | None) -> list[Story]:
    """Stories from (kind, rows of ``pooled`` — last week's ``n1`` rows, then this week's —, p-value) groups,
    those of one direction whose centroids reach ``threshold`` merged; most significant first."""
    stories: list[Story] = []
    for kind in ("emerging", "fading"):
        for rows, p in _merge_close(pooled, [(rows, p) for k, rows, p in groups if k == kind], threshold):
            stories.append(Story(kind, rows[rows < n1], rows[rows >= n1] - n1, p))
    return sorted(stories, key=lambda s: s.p_value)


def _merge_close(pooled: np.ndarray, groups: list[tuple[np.ndarray, float]], threshold: float | None) -> list[tuple[np.ndarray, float]]:
    """Groups whose normalised centroids reach ``threshold`` become one (most similar pair first, centroids
    recomputed); a merged group keeps the smallest p-value."""
    groups = list(groups)
    while threshold is not None and len(groups) > 1:
        cents = _units(np.stack([pooled[rows].mean(0) for rows, _ in groups]))
        sims = cents @ cents.T
        np.fill_diagonal(sims, -np.inf)
        i, j = divmod(int(np.argmax(sims)), len(groups))
        if sims[i, j] < threshold:
            break
        groups[i] = (np.union1d(groups[i][0], groups[j][0]), min(groups[i][1], groups[j][1]))
        del groups[j]
    return groups
