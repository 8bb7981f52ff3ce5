"""The issue-type heads: two views of a text, each with two kinds of logistic regression.

Views: ``issue`` — the tuned encoder's features (last-layer and split-layer pools,
standardised); ``lexical`` — character n-gram TF-IDF (``models.lexical``). Per view, one-vs-rest
logistic regressions give a probability per label (the label set) and a multinomial one picks
the primary label (the argmax of independent one-vs-rest probabilities over-picks rare classes).
The views' probabilities are averaged with the weight ``blend`` (of the encoder view); the
per-label thresholds are chosen on out-of-fold predictions of the training rows, never on
held-out rows. ``blend`` is fixed (0.5, equal weights) by default rather than taken from those
out-of-fold predictions: the shipped encoder was fine-tuned on the same issue-type rows, so its
out-of-fold scores are optimistic (macro-F1 0.95 on training rows against 0.63 held out) and
would always pick the encoder alone. ``blend=None`` picks it by cross-validation, which is
right only for an encoder that never saw the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.lexical import CharNgrams
from models.linear_heads import fit_multinomial, softmax
from models.taxonomy import ISSUE_TYPES

K = len(ISSUE_TYPES)
BLEND_GRID = tuple(round(float(x), 2) for x in np.arange(0.0, 1.001, 0.1))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -40, 40)))


def view_probs(X, heads: dict[str, np.ndarray], prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """(one-vs-rest probabilities, primary-label probabilities) of one view; X dense or sparse."""
    ovr = _sigmoid(np.asarray(X @ heads[f"{prefix}.weight"].T) + heads[f"{prefix}.bias"])
    p = "primary" if prefix == "issue" else f"{prefix}.primary"
    primary = softmax(np.asarray(X @ heads[f"{p}.weight"].T) + heads[f"{p}.bias"])
    return ovr, primary


def blend_probs(views: Sequence[tuple[np.ndarray, np.ndarray]], blend: float) -> tuple[np.ndarray, np.ndarray]:
    """Weighted average of (encoder view, lexical view) probabilities; one view passes through."""
    if len(views) == 1:
        return views[0]
    (oe, pe), (ol, pl) = views
    return blend * oe + (1 - blend) * ol, blend * pe + (1 - blend) * pl


def _fit_view(X, Y: np.ndarray, primary: np.ndarray, C: float) -> dict[str, np.ndarray]:
    """One-vs-rest (label set) and multinomial (primary label) logistic regressions, class-balanced."""
    from sklearn.linear_model import LogisticRegression

    dim = X.shape[1]
    W = np.zeros((K, dim), np.float32)
    b = np.full(K, -6.0, np.float32)
    for j in range(K):
        if Y[:, j].min() == Y[:, j].max():  # no positive (or no negative) rows: constant
            b[j] = 6.0 if Y[0, j] else -6.0
            continue
        m = LogisticRegression(C=C, max_iter=2000, class_weight="balanced").fit(X, Y[:, j])
        W[j], b[j] = m.coef_[0], m.intercept_[0]
    PW, Pb = fit_multinomial(X, primary, K, C)
    return {"weight": W, "bias": b, "primary.weight": PW, "primary.bias": Pb}


def _as_heads(fitted: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    if prefix == "issue":
        return {"issue.weight": fitted["weight"], "issue.bias": fitted["bias"],
                "primary.weight": fitted["primary.weight"], "primary.bias": fitted["primary.bias"]}
    return {f"{prefix}.{k}": v for k, v in fitted.items()}


def _macro_f1(y: np.ndarray, pred: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y, pred, labels=np.unique(y), average="macro", zero_division=0))


def _best_threshold(p: np.ndarray, y: np.ndarray) -> float:
    best, best_f = 0.5, -1.0
    for t in np.arange(0.2, 0.91, 0.05):
        hit = p >= t
        tp = (hit & (y == 1)).sum()
        f = 2 * tp / (hit.sum() + y.sum()) if tp else 0.0
        if f > best_f:
            best, best_f = float(t), f
    return best


@dataclass(frozen=True)
class PrimaryCalibration:
    """How the primary label is decided from the blended primary-label probabilities.

    ``temperature`` rescales them (``softmax(log p / T)``) so that a stated confidence matches
    how often it is right; below ``other_below`` no class is confident and the message is
    ``other`` (abstain). Both are chosen on out-of-fold predictions of rows the tuned encoder
    never saw — on rows it was tuned on, every score is overconfident.
    """

    temperature: float = 1.0
    other_below: float = 0.0
    rows: int = 0  # how many rows chose them (0: the defaults, nothing was calibrated)

    def apply(self, primary: np.ndarray) -> np.ndarray:
        if self.temperature == 1.0:
            return primary
        return softmax(np.log(np.clip(primary, 1e-12, 1.0)) / self.temperature)


TEMPERATURES = tuple(round(float(t), 2) for t in np.arange(0.5, 3.01, 0.1))
ABSTAIN_GRID = tuple(round(float(t), 2) for t in np.arange(0.0, 0.61, 0.05))
MIN_CALIBRATION_ROWS = 50
BOOTSTRAP = 200


def decide_primary(primary: np.ndarray, other_below: float) -> np.ndarray:
    """Index of each row's primary label: the most probable, or ``other`` when that is below ``other_below``."""
    choice = primary.argmax(1)
    return np.where(primary.max(1) < other_below, ISSUE_TYPES.index("other"), choice)


def calibrate_primary(primary: np.ndarray, y: np.ndarray, seed: int = 13) -> PrimaryCalibration:
    """Temperature by log-loss; then the lowest abstain level whose macro-F1 is within one
    bootstrap standard error of the best level's (few calibration rows: a higher level must earn
    its place clearly, or the messages it turns into ``other`` are lost on new data)."""
    def nll(t: float) -> float:
        p = PrimaryCalibration(t).apply(primary)
        return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1.0)).mean())

    temperature = min(TEMPERATURES, key=lambda t: (nll(t), abs(t - 1.0)))
    calibrated = PrimaryCalibration(temperature).apply(primary)
    scores = {a: _macro_f1(y, decide_primary(calibrated, a)) for a in ABSTAIN_GRID}
    best = max(ABSTAIN_GRID, key=lambda a: (scores[a], -a))
    rng = np.random.default_rng(seed)
    picks = decide_primary(calibrated, best)
    boot = [_macro_f1(y[i], picks[i]) for i in (rng.integers(0, len(y), len(y)) for _ in range(BOOTSTRAP))]
    other_below = min(a for a in ABSTAIN_GRID if scores[a] >= scores[best] - float(np.std(boot)))
    return PrimaryCalibration(temperature, other_below, len(y))


@dataclass
class IssueHeads:
    heads: dict[str, np.ndarray]
    thresholds: np.ndarray
    blend: float
    ngrams: CharNgrams | None
    cv: dict  # out-of-fold macro-F1 of the primary label per blend weight (training rows)
    calibration: PrimaryCalibration = PrimaryCalibration()


def fit_issue_heads(
    X: np.ndarray,
    texts: Sequence[str],
    labels: Sequence[Sequence[str]],
    primary_labels: Sequence[str],
    C: float,
    lexical_C: float,
    seed: int,
    quick: bool = False,
    lexical: bool = True,
    blend: float | None = 0.5,
    encoder_unseen: np.ndarray | None = None,
) -> IssueHeads:
    """``encoder_unseen``: a mask of the rows the tuned encoder was not trained on; their
    out-of-fold predictions choose the primary-label calibration (``PrimaryCalibration``)."""
    from sklearn.model_selection import StratifiedKFold

    Y = np.array([[lab in ls for lab in ISSUE_TYPES] for ls in labels], dtype=np.int64)
    primary = np.array([ISSUE_TYPES.index(p) for p in primary_labels])
    mean, scale = X.mean(0), X.std(0) + 1e-6
    views = [("issue", (X - mean) / scale, C)]
    ngrams = None
    if lexical:
        ngrams = CharNgrams.fit(texts, min_df=1 if quick else 2)
        views.append(("lexical", ngrams.transform(texts), lexical_C))

    fixed = 1.0 if len(views) == 1 else blend
    thresholds, cv, calibration = np.full(K, 0.5, np.float32), {}, PrimaryCalibration()
    folds = 0 if quick or len(primary) < 50 else 5
    if folds:
        oof = [(np.zeros(Y.shape), np.zeros(Y.shape)) for _ in views]
        split = StratifiedKFold(folds, shuffle=True, random_state=seed).split(views[0][1], primary)
        for tr, te in split:
            for v, (prefix, Xv, c) in enumerate(views):
                h = _as_heads(_fit_view(Xv[tr], Y[tr], primary[tr], c), prefix)
                o, p = view_probs(Xv[te], h, prefix)
                oof[v][0][te], oof[v][1][te] = o, p
        grid = BLEND_GRID if len(views) == 2 else (1.0,)
        cv = {w: round(_macro_f1(primary, blend_probs(oof, w)[1].argmax(1)), 4) for w in grid}
        if fixed is None:
            fixed = max(grid, key=lambda w: (cv[w], w))  # ties: more weight on the encoder
        ovr, oof_primary = blend_probs(oof, fixed)
        for j in range(K):
            if Y[:, j].sum() >= 3:
                thresholds[j] = _best_threshold(ovr[:, j], Y[:, j])
        if encoder_unseen is not None and encoder_unseen.sum() >= MIN_CALIBRATION_ROWS:
            calibration = calibrate_primary(oof_primary[encoder_unseen], primary[encoder_unseen], seed)
    heads = {"issue.mean": mean.astype(np.float32), "issue.scale": scale.astype(np.float32)}
    for prefix, Xv, c in views:
        heads.update(_as_heads(_fit_view(Xv, Y, primary, c), prefix))
    if ngrams is not None:
        heads["lexical.idf"] = ngrams.idf
    return IssueHeads(heads, thresholds, float(0.5 if fixed is None else fixed), ngrams,
                      {str(k): v for k, v in cv.items()}, calibration)
