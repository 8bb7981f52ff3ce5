"""Calibration and benchmark inputs: labelled real reviews, embedded by the production model."""

from __future__ import annotations

import csv
import json
import random
from dataclasses import asdict
from pathlib import Path

import numpy as np

from consumers.themes.calibration import calibrate
from pipelines.enrichment import production_model
from topics.settings import Settings

# Topic = domain × polarity: same-topic pairs are "the same theme", everything else is not.
_CSV_SOURCES = {
    "online_shopping_9_cats.csv": lambda row: row["cat"],
    "waimai_10k.csv": lambda row: "外卖",
    "chnsenticorp_train.csv": lambda row: "酒店",
}


def load_labelled_reviews(data_dir: Path, per_topic: int, seed: int = 0, min_chars: int = 4, max_chars: int = 200) -> tuple[list[str], list[str]]:
    """Up to ``per_topic`` reviews per domain × polarity, sampled reproducibly."""
    groups: dict[str, list[str]] = {}
    for name, domain in _CSV_SOURCES.items():
        path = Path(data_dir) / name
        if not path.is_file():
            raise FileNotFoundError(f"labelled reviews not found: {path}")
        with path.open(encoding="utf-8-sig", newline="") as f:
            for row in csv.DictReader(f):
                text = (row.get("review") or "").strip()
                if min_chars <= len(text) <= max_chars:
                    groups.setdefault(f"{domain(row)}-{'positive' if row['label'] == '1' else 'negative'}", []).append(text)
    rng = random.Random(seed)
    texts, labels = [], []
    for topic in sorted(groups):
        picked = rng.sample(groups[topic], min(per_topic, len(groups[topic])))
        texts += picked
        labels += [topic] * len(picked)
    return texts, labels


def measure_center(settings: Settings, data_dir: Path, per_topic: int = 150) -> dict:
    """The mean raw theme embedding of the labelled calibration reviews, written to the package's centre file
    (``consumers/themes/representation.py`` subtracts it); recompute whenever the theme representation changes."""
    from consumers.themes import representation

    texts, _ = load_labelled_reviews(data_dir, per_topic)
    model = production_model(settings)
    raw = np.stack([p.theme_embedding for p in model.predict(texts, batch_size=settings.model.batch_size)])
    center = raw.astype(np.float64).mean(0)
    branch = model.encoder.topic_branch
    doc = {
        "what": f"mean of the model's raw theme embeddings (topic branch {branch.version}, {settings.model.quantize}, "
                f"normalised) over the {len(texts):,} labelled calibration reviews (load_labelled_reviews, {per_topic} per topic); "
                "subtracted before themes compare vectors. Recompute (themes calibrate --write-center) when the theme "
                "representation or its inference graph changes.",
        "dim": int(raw.shape[1]),
        "center": [round(float(v), 6) for v in center],
    }
    path = representation.center_path()
    path.write_text(json.dumps(doc, ensure_ascii=False) + "\n", encoding="utf-8")
    representation.theme_center.cache_clear()
    return {"path": str(path), "reviews": len(texts)}


def embed(settings: Settings, texts: list[str]) -> np.ndarray:
    """The vectors themes use (the model's centred topic embedding), as the enricher computes them."""
    from consumers.enricher.classifier import theme_vector

    predictions = production_model(settings).predict(texts, batch_size=settings.model.batch_size)
    return np.stack([theme_vector(p) for p in predictions]).astype(np.float32)


def run_calibration(settings: Settings, data_dir: Path, per_topic: int, precision: float | None, live_precision: float | None = 0.9,
                    write_center: bool = False) -> dict:
    """Weekly similarities at ``precision`` (None: best separation); the live curve at ``live_precision``
    (the default 0.9: at best separation a single message joins themes of other topics, docs/themes.md)."""
    center = measure_center(settings, data_dir, per_topic) if write_center else None
    texts, labels = load_labelled_reviews(data_dir, per_topic)
    vectors = embed(settings, texts)
    result = calibrate(vectors, labels, target_precision=precision)
    if live_precision != precision:
        live = calibrate(vectors, labels, target_precision=live_precision)
        result.distributions["live_curve_best_separation" if precision is None else f"live_curve_precision_{precision}"] = result.live_curve  # type: ignore[assignment]
        result.live_curve = live.live_curve
    out = asdict(result)
    out["live_precision"] = live_precision
    if center:
        out["center_written"] = center
    out["data"] = {"reviews": len(texts), "topics": len(set(labels)), "per_topic": per_topic, "source": str(data_dir)}
    out["settings_env"] = {
        "FEEDBACK_MINER_ENRICHMENT__LIVE__THRESHOLD_CURVE": json.dumps(result.live_curve),
        "FEEDBACK_MINER_ENRICHMENT__WEEKLY__MERGE_SIMILARITY": str(result.merge_similarity),
        "FEEDBACK_MINER_ENRICHMENT__WEEKLY__CONTINUITY_SIMILARITY": str(result.continuity_similarity),
    }
    return out
