"""``feedback-miner bench themes``: clustering time at scale and clusterer quality on real reviews.

Time: ``messages`` vectors made from ``real`` embedded real reviews (each a
real embedding plus small noise, re-normalised: real geometry, any size),
clustered on ``threads`` CPU threads (quality scored against the sources' topics). Quality: each clusterer on the real
embeddings themselves, scored against the domain × polarity labels (adjusted
Rand index over clustered messages, coverage = share not left as noise,
purity = share of clustered messages in a cluster whose majority topic is
their own, counting noise as wrong).
"""

from __future__ import annotations

import os
import platform
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from consumers.themes.clustering import AgglomerativeClusterer, HdbscanClusterer
from pipelines.enrichment import production_model
from pipelines.themes_calibration import embed, load_labelled_reviews
from topics.settings import Settings


def _limit_threads(threads: int) -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:  # pragma: no cover
        pass


def quality(labels: np.ndarray, topics: np.ndarray) -> dict:
    from sklearn.metrics import adjusted_rand_score

    clustered = labels >= 0
    right = 0
    for k in set(labels[clustered].tolist()):
        right += Counter(topics[labels == k].tolist()).most_common(1)[0][1]
    return {
        "clusters": int(labels.max() + 1) if clustered.any() else 0,
        "coverage": round(float(clustered.mean()), 4),
        "purity_over_all": round(right / len(labels), 4),
        "ari_clustered": round(float(adjusted_rand_score(topics[clustered], labels[clustered])), 4) if clustered.any() else 0.0,
    }


def run_themes_benchmark(settings: Settings, messages: int, real: int, data_dir: Path, threads: int) -> dict:
    _limit_threads(threads)
    weekly = settings.enrichment.weekly
    texts, topics = load_labelled_reviews(data_dir, max(1, real // 22))
    t0 = time.perf_counter()
    base = embed(settings, texts)
    encode_s = time.perf_counter() - t0
    topics_arr = np.asarray(topics)
    clusterers = {
        "agglomerative": AgglomerativeClusterer(weekly.merge_similarity, weekly.micro_clusters, weekly.min_theme_size, weekly.seed),
        "hdbscan": HdbscanClusterer(weekly.hdbscan_min_cluster_size, weekly.pca_dims, weekly.seed),
    }
    quality_report = {}
    for name, clusterer in clusterers.items():
        t = time.perf_counter()
        labels = clusterer.cluster(base)
        quality_report[name] = {**quality(labels, topics_arr), "seconds": round(time.perf_counter() - t, 2)}

    rng = np.random.default_rng(weekly.seed)
    picks = rng.integers(0, len(base), messages)
    # Noise of norm ~0.1 (cosine ~0.995 to its source): near-paraphrases, the topic geometry intact.
    week = base[picks] + rng.normal(0.0, 0.1 / np.sqrt(base.shape[1]), (messages, base.shape[1])).astype(np.float32)
    week /= np.linalg.norm(week, axis=1, keepdims=True)
    timing = {}
    for name in (weekly.algorithm,):
        t = time.perf_counter()
        labels = clusterers[name].cluster(week)
        timing[name] = {"seconds": round(time.perf_counter() - t, 2), "quality": quality(labels, topics_arr[picks])}
    seconds = timing[weekly.algorithm]["seconds"]
    return {
        "benchmark": "weekly theme clustering",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus_available": os.cpu_count(), "threads_used": threads, "python": platform.python_version()},
        "model_version": production_model(settings).version,
        "data": {"real_reviews": len(texts), "topics": len(set(topics)), "source": str(data_dir), "encode_seconds": round(encode_s, 1)},
        "quality_on_real_reviews": quality_report,
        "scale": {"messages": messages, "algorithm": weekly.algorithm, **timing[weekly.algorithm]},
        "target": {"messages": 100_000, "max_seconds": 60, "met": messages >= 100_000 and seconds <= 60},
    }
