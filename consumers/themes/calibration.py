"""Calibrating similarity thresholds on labelled real reviews.

e5 cosine similarities crowd into ~0.85-0.96 and a normalised centroid of k
members sits closer to everything than a single message does, so one guessed
number is wrong twice. We simulate the decision instead: a held-out message
against the centroid of k random members of its own topic (positive) or of
another topic (negative), for several k; the threshold for each k is the one
that separates the two best (Youden's J), or, with ``target_precision``, the
lowest one at which "joins" is right that often (equal priors).
The weekly merge threshold is the typical (median) group-average similarity
of two groups of one topic (what average linkage compares): a merged theme
must be as coherent as a labelled topic is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DEFAULT_SIZES = (1, 2, 3, 5, 10, 20, 50)


@dataclass
class Calibration:
    # (centroid size k, threshold) for live assignment.
    live_curve: list[tuple[int, float]]
    # Group-average similarity at which two groups are the same theme.
    merge_similarity: float
    # Similarity of two normalised group centroids at which they are the same theme (week-to-week continuity).
    continuity_similarity: float
    target_precision: float | None
    # Percentiles (10, 50, 90) of the simulated similarities, for the docs.
    distributions: dict[str, dict[str, list[float]]] = field(default_factory=dict)


def _threshold(pos: np.ndarray, neg: np.ndarray, target_precision: float | None) -> float:
    # Candidate thresholds: the observed similarities, on a 0.001 grid.
    grid = np.unique(np.round(np.concatenate([pos, neg]), 3))
    if target_precision is None:
        # Youden's J: the threshold that best separates same-topic from other-topic similarities
        # (true-positive rate minus false-positive rate), whatever the spread of the model's similarities.
        tpr = (pos[None, :] >= grid[:, None]).mean(1)
        fpr = (neg[None, :] >= grid[:, None]).mean(1)
        return float(grid[int(np.argmax(tpr - fpr))])
    for t in grid:
        tp, fp = int((pos >= t).sum()), int((neg >= t).sum())
        if tp and tp / (tp + fp) >= target_precision:
            return float(t)
    return float(grid[-1])


def _pct(x: np.ndarray) -> list[float]:
    return [round(float(v), 4) for v in np.percentile(x, [10, 50, 90])]


def calibrate(
    embeddings: np.ndarray,
    labels: list[str] | np.ndarray,
    target_precision: float | None = None,
    sizes: tuple[int, ...] = DEFAULT_SIZES,
    group_size: int = 10,
    trials: int = 2000,
    seed: int = 0,
) -> Calibration:
    """Thresholds from L2-normalised ``embeddings`` whose ``labels`` name their topic."""
    emb = np.asarray(embeddings, dtype=np.float32)
    labels = np.asarray(labels)
    topics = np.unique(labels)
    if len(topics) < 2:
        raise ValueError("calibration needs at least two topics")
    members = {t: np.flatnonzero(labels == t) for t in topics}
    smallest = min(len(m) for m in members.values())
    if smallest < max(max(sizes), 2 * group_size) + 1:
        raise ValueError(f"every topic needs more than {max(max(sizes), 2 * group_size)} messages; one has {smallest}")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(emb), trials)

    def centroid(idx: np.ndarray) -> np.ndarray:
        c = emb[idx].mean(0)
        return c / np.linalg.norm(c)

    def other_topic(t: str) -> str:
        while (o := topics[rng.integers(len(topics))]) == t:
            pass
        return o

    curve, dists = [], {}
    for k in sizes:
        pos, neg = np.empty(trials), np.empty(trials)
        for n, i in enumerate(picks):
            own = members[labels[i]]
            own = own[own != i]
            pos[n] = emb[i] @ centroid(rng.choice(own, k, replace=False))
            neg[n] = emb[i] @ centroid(rng.choice(members[other_topic(labels[i])], k, replace=False))
        curve.append((k, _threshold(pos, neg, target_precision)))
        dists[f"centroid_k{k}"] = {"same_topic": _pct(pos), "other_topic": _pct(neg)}

    # Average linkage compares mean pairwise similarity = dot product of the (unnormalised) group means.
    pos, neg = np.empty(trials), np.empty(trials)
    cpos, cneg = np.empty(trials), np.empty(trials)
    for n, i in enumerate(picks):
        own = rng.choice(members[labels[i]], 2 * group_size, replace=False)
        other = rng.choice(members[other_topic(labels[i])], group_size, replace=False)
        a, b, c = emb[own[:group_size]].mean(0), emb[own[group_size:]].mean(0), emb[other].mean(0)
        pos[n], neg[n] = a @ b, a @ c
        cpos[n] = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
        cneg[n] = a @ c / (np.linalg.norm(a) * np.linalg.norm(c))
    dists[f"group_average_m{group_size}"] = {"same_topic": _pct(pos), "other_topic": _pct(neg)}
    dists[f"centroid_pair_m{group_size}"] = {"same_topic": _pct(cpos), "other_topic": _pct(cneg)}
    # Merging stops where a merged theme would be less coherent than a typical labelled topic
    # (the median same-topic group-average similarity): separating topics at their best
    # (Youden) lets average linkage chain many topics into a few themes.
    merge = float(np.round(np.median(pos), 3)) if target_precision is None else _threshold(pos, neg, target_precision)
    return Calibration(curve, merge, _threshold(cpos, cneg, target_precision), target_precision, dists)


def threshold_for_size(curve: list[tuple[int, float]], size: int) -> float:
    """The live threshold for a centroid of ``size`` members: linear in log(size) between calibrated points."""
    ks = np.log([max(1, k) for k, _ in curve])
    ts = [t for _, t in curve]
    return float(np.interp(np.log(max(1, size)), ks, ts))
