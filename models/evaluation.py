"""Evaluation on JSONL files: parsing with strict validation, and the metrics.

File format, one JSON object per line: ``{"text": "...", "label": "..."}``; issue-type
lines may also carry ``"labels": [...]`` (every label that applies). Aspect-sentiment lines
(task ``aspect_sentiment``) carry ``"labels"`` and ``"aspects": {label: sentiment}`` for every
label; their ``label`` (default: the first of ``labels``) is the primary issue type. Blank lines are ignored; anything else that
is not a valid row makes the whole file invalid.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.taxonomy import ISSUE_TYPES, SENTIMENTS

TASKS = ("sentiment", "issue_type", "aspect_sentiment")
ECE_BINS = 10


class EvalDataError(ValueError):
    """The evaluation file has malformed lines; ``errors`` maps line number → reason."""

    def __init__(self, path: Path, errors: dict[int, str]) -> None:
        self.path = path
        self.errors = errors
        lines = sorted(errors)
        shown = ", ".join(str(n) for n in lines[:50]) + (" …" if len(lines) > 50 else "")
        detail = "; ".join(f"line {n}: {errors[n]}" for n in lines[:10])
        super().__init__(f"{path}: {len(lines)} malformed line(s): {shown} ({detail})")


@dataclass(frozen=True)
class EvalRow:
    line: int
    text: str
    label: str
    labels: tuple[str, ...] | None
    aspects: dict[str, str] | None = None


def label_set(task: str) -> tuple[str, ...]:
    if task == "sentiment":
        return SENTIMENTS
    if task in ("issue_type", "aspect_sentiment"):
        return ISSUE_TYPES
    raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")


def read_eval_file(path: Path, task: str) -> list[EvalRow]:
    """Parse and validate every line; raise EvalDataError naming all malformed lines."""
    allowed = label_set(task)
    rows: list[EvalRow] = []
    errors: dict[int, str] = {}
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise EvalDataError(Path(path), {0: f"cannot read file: {exc}"}) from exc
    for n, bline in enumerate(raw.splitlines(), start=1):
        try:
            line = bline.decode("utf-8")
        except UnicodeDecodeError:
            errors[n] = "not UTF-8"
            continue
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            errors[n] = f"invalid JSON ({exc.msg})"
            continue
        if not isinstance(obj, dict):
            errors[n] = "not a JSON object"
            continue
        text, label = obj.get("text"), obj.get("label")
        if task == "aspect_sentiment" and label is None and isinstance(obj.get("labels"), list) and obj["labels"]:
            label = obj["labels"][0]  # aspect files may name the primary only as the first label
        if not isinstance(text, str) or not text.strip():
            errors[n] = "missing or empty 'text'"
            continue
        if not isinstance(label, str) or label not in allowed:
            errors[n] = f"'label' must be one of {list(allowed)}, got {label!r}"
            continue
        labels = None
        if "labels" in obj and obj["labels"] is not None:
            if task == "sentiment":
                errors[n] = "'labels' is only valid for issue_type and aspect_sentiment"
                continue
            lab = obj["labels"]
            if not isinstance(lab, list) or not lab or not all(isinstance(x, str) and x in allowed for x in lab):
                errors[n] = f"'labels' must be a non-empty list of {list(allowed)}"
                continue
            labels = tuple(dict.fromkeys([label, *lab]))
        aspects = None
        if task == "aspect_sentiment":
            asp = obj.get("aspects")
            if labels is None or not isinstance(asp, dict) or set(asp) != set(labels) or any(
                    v not in SENTIMENTS for v in asp.values()):
                errors[n] = f"'labels' and 'aspects' (one of {list(SENTIMENTS)} per label) are required"
                continue
            aspects = dict(asp)
        elif "aspects" in obj:
            errors[n] = "'aspects' is only valid for aspect_sentiment"
            continue
        rows.append(EvalRow(n, text, label, labels, aspects))
    if errors:
        raise EvalDataError(Path(path), errors)
    if not rows:
        raise EvalDataError(Path(path), {0: "no rows"})
    return rows


def per_class_report(y_true: list[str], y_pred: list[str], labels: list[str]) -> dict[str, dict]:
    out = {}
    for lab in labels:
        tp = sum(1 for t, p in zip(y_true, y_pred) if t == lab and p == lab)
        fp = sum(1 for t, p in zip(y_true, y_pred) if t != lab and p == lab)
        fn = sum(1 for t, p in zip(y_true, y_pred) if t == lab and p != lab)
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        out[lab] = {"precision": round(prec, 4), "recall": round(rec, 4), "f1": round(f1, 4), "support": tp + fn}
    return out


def single_label_metrics(y_true: list[str], y_pred: list[str], labels: list[str]) -> dict:
    """accuracy, macro-F1 over the labels present in the gold data, per-class figures.

    ``per_class`` lists every label that occurs in the gold data or the predictions.
    """
    present = [lab for lab in labels if lab in set(y_true)]
    shown = [lab for lab in labels if lab in set(y_true) | set(y_pred)]
    per = per_class_report(y_true, y_pred, shown)
    acc = float(np.mean([t == p for t, p in zip(y_true, y_pred)])) if y_true else 0.0
    macro = float(np.mean([per[lab]["f1"] for lab in present])) if present else 0.0
    return {"accuracy": round(acc, 4), "macro_f1": round(macro, 4), "per_class": per}


def multilabel_micro_f1(gold: list[set[str]], pred: list[set[str]]) -> float:
    tp = sum(len(g & p) for g, p in zip(gold, pred))
    fp = sum(len(p - g) for g, p in zip(gold, pred))
    fn = sum(len(g - p) for g, p in zip(gold, pred))
    return round(2 * tp / (2 * tp + fp + fn), 4) if tp else 0.0


def cohen_kappa(a: list, b: list) -> float | None:
    """Cohen's kappa of two annotators' labels for the same rows (3 decimals); None when chance
    agreement is certain (both used one and the same category throughout)."""
    n = len(a)
    cats = sorted(set(a) | set(b))
    po = sum(x == y for x, y in zip(a, b)) / n
    pe = sum((a.count(c) / n) * (b.count(c) / n) for c in cats)
    return None if pe == 1 else round((po - pe) / (1 - pe), 3)


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """Top-label ECE: |accuracy − mean confidence| per equal-width confidence bin, weighted by the bin's share."""
    confidence, correct = np.asarray(confidence, float), np.asarray(correct, float)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    gap = sum(abs(correct[which == b].mean() - confidence[which == b].mean()) * (which == b).sum()
              for b in range(bins) if (which == b).any())
    return round(float(gap / len(confidence)), 4) if len(confidence) else 0.0


def sentiment_report(rows: list[EvalRow], probs: np.ndarray) -> dict:
    """probs: (n, 3) over SENTIMENTS."""
    y_true = [r.label for r in rows]
    pred3 = [SENTIMENTS[i] for i in probs.argmax(1)]
    res = {"task": "sentiment", "n": len(rows), **single_label_metrics(y_true, pred3, list(SENTIMENTS))}
    res["ece"] = expected_calibration_error(probs.max(1), np.array(y_true) == np.array(pred3))
    present = [s for s in SENTIMENTS if s in set(y_true)]
    # The prediction restricted to the labels the file uses (e.g. negative/positive).
    idx = [SENTIMENTS.index(s) for s in present]
    restricted = [present[i] for i in probs[:, idx].argmax(1)]
    rm = single_label_metrics(y_true, restricted, present)
    res["restricted_accuracy"] = rm["accuracy"]
    if "neutral" not in present:
        res["binary_accuracy"] = rm["accuracy"]
        res["binary_macro_f1"] = rm["macro_f1"]
    return res


def issue_type_report(rows: list[EvalRow], primary: list[str], label_sets: list[list[str]],
                      confidence: list[float] | None = None) -> dict:
    """``confidence``: the model's probability of each primary label, for the calibration error."""
    y_true = [r.label for r in rows]
    res = {"task": "issue_type", "n": len(rows), **single_label_metrics(y_true, primary, list(ISSUE_TYPES))}
    if confidence is not None and not np.isnan(confidence).any():
        res["ece"] = expected_calibration_error(np.array(confidence), np.array(y_true) == np.array(primary))
    if any(r.labels is not None for r in rows):
        gold = [set(r.labels) if r.labels else {r.label} for r in rows]
        res["multilabel_micro_f1"] = multilabel_micro_f1(gold, [set(s) for s in label_sets])
    return res


def evaluate(model, rows: list[EvalRow], task: str, batch_size: int = 64, chunk: int = 256, progress=None) -> dict:
    """Run ``model`` (a FeedbackModel) over ``rows`` and compute the report for ``task``."""
    label_set(task)
    preds = []
    texts = [r.text for r in rows]
    for s in range(0, len(texts), chunk):
        preds += model.predict(texts[s : s + chunk], batch_size=batch_size)
        if progress:
            progress(len(texts[s : s + chunk]))
    sentiment = np.array([[p.sentiment_probs[lab] for lab in SENTIMENTS] for p in preds])
    if task == "sentiment":
        return sentiment_report(rows, sentiment)
    if task == "aspect_sentiment":
        given = model.aspect_sentiments(texts, [r.labels for r in rows], sentiment)
        return aspect_report(rows, given, [p.aspect_sentiments for p in preds])
    return issue_type_report(rows, [p.primary_issue for p in preds], [p.issue_labels for p in preds],
                             [p.issue_confidence for p in preds])


def aspect_report(rows: list[EvalRow], given_labels: list[dict[str, str]], predicted: list[dict[str, str]]) -> dict:
    """Aspect sentiment accuracy per (text, gold label) pair, the gold labels given to the model;
    ``mixed_accuracy``: on the rows whose aspects differ in sentiment (where aspects matter);
    ``end_to_end``: over the gold pairs whose label the model also predicted on its own."""
    hits, mixed_hits, found = [], [], []
    mixed_rows = 0
    for k, r in enumerate(rows):
        mixed = len(set(r.aspects.values())) > 1
        mixed_rows += mixed
        for lab in r.labels:
            hit = given_labels[k][lab] == r.aspects[lab]
            hits.append(hit)
            if mixed:
                mixed_hits.append(hit)
            if lab in predicted[k]:
                found.append(predicted[k][lab] == r.aspects[lab])

    def share(xs: list[bool]) -> float | None:
        return round(float(np.mean(xs)), 4) if xs else None

    return {"task": "aspect_sentiment", "n": len(rows), "pairs": len(hits), "accuracy": share(hits),
            "mixed_rows": mixed_rows, "mixed_accuracy": share(mixed_hits),
            "end_to_end": {"pairs_found": len(found), "accuracy": share(found)}}
