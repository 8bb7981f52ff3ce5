"""Training data: the real labelled sentiment sets (the shared data folder) and the issue-type set.

The shared data folder is passed in by the caller (the CLI takes it from the project setting
``shared_data``); :func:`shared_data_dir` falls back to the environment variable
``FEEDBACK_MINER_SHARED_DATA`` — the same variable that setting reads — for callers that pass none.

Everything is deduplicated on a normalised key (NFKC, lower case, only letters and
digits) *before* any split, across files, so near-identical reviews never sit on both
sides of a split. Rows whose key maps to conflicting labels are dropped.
"""

from __future__ import annotations

import csv
import json
import os
import random
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from models.taxonomy import ISSUE_TYPES

_KEEP = re.compile(r"[\W_]+", re.UNICODE)


def dedup_key(text: str) -> str:
    t = unicodedata.normalize("NFKC", text).lower()
    return _KEEP.sub("", t)


@dataclass
class Example:
    text: str
    label: str
    source: str
    labels: list[str] = field(default_factory=list)
    origin: str = "real"
    domain: str = ""


SHARED_DATA_ENV = "FEEDBACK_MINER_SHARED_DATA"


def shared_data_dir(path: Path | None) -> Path:
    """``path``, else the folder named by ``FEEDBACK_MINER_SHARED_DATA``; an error when neither is given."""
    if path is not None:
        return Path(path)
    if os.environ.get(SHARED_DATA_ENV):
        return Path(os.environ[SHARED_DATA_ENV])
    raise ValueError(f"no shared data folder: pass one (feedback-miner train --shared-data, the setting "
                     f"shared_data) or set {SHARED_DATA_ENV}")


def _read_csv(path: Path) -> Iterable[dict]:
    with path.open(encoding="utf-8", newline="") as f:
        yield from csv.DictReader(f)


WEIBO_SENTIMENT = {
    "happy": "positive",
    "neutral": "neutral",
    "angry": "negative",
    "sad": "negative",
    "fear": "negative",
    # "surprise" is ambiguous in polarity: not used.
}


def load_sentiment_sources(data_dir: Path) -> list[Example]:
    """All sentiment rows of the shared data folder, labelled negative/neutral/positive, with their domain."""
    d = Path(data_dir)
    rows: list[Example] = []
    lab = {"0": "negative", "1": "positive"}
    for r in _read_csv(d / "waimai_10k.csv"):
        if r.get("review") and r.get("label") in lab:
            rows.append(Example(r["review"], lab[r["label"]], "waimai_10k", domain="waimai"))
    for r in _read_csv(d / "online_shopping_9_cats.csv"):
        if r.get("review") and r.get("label") in lab:
            rows.append(
                Example(r["review"], lab[r["label"]], "online_shopping_9_cats", domain=f"shopping/{r.get('cat', '')}")
            )
    for r in _read_csv(d / "chnsenticorp_train.csv"):
        if r.get("review") and r.get("label") in lab:
            rows.append(Example(r["review"], lab[r["label"]], "chnsenticorp_train", domain="hotel"))
    with (d / "weibo_emotion_virus.jsonl").open(encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            s = WEIBO_SENTIMENT.get(r.get("emotion", ""))
            if s and r.get("text"):
                rows.append(Example(r["text"], s, "weibo_emotion_virus", domain="weibo"))
    return rows


def dedup(rows: list[Example]) -> list[Example]:
    """Drop rows whose normalised text was seen before; drop keys with conflicting labels."""
    by_key: dict[str, list[Example]] = {}
    for r in rows:
        k = dedup_key(r.text)
        if len(k) < 2:
            continue
        by_key.setdefault(k, []).append(r)
    out = []
    for group in by_key.values():
        if len({g.label for g in group}) == 1:
            out.append(group[0])
    return out


def load_issue_type_file(path: Path) -> list[Example]:
    rows = []
    with Path(path).open(encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            labels = [l for l in (r.get("labels") or [r["label"]]) if l in ISSUE_TYPES]
            if r["label"] not in ISSUE_TYPES:
                continue
            if r["label"] not in labels:
                labels.insert(0, r["label"])
            else:
                labels = [r["label"]] + [l for l in labels if l != r["label"]]
            rows.append(
                Example(
                    r["text"],
                    r["label"],
                    r.get("source", Path(path).stem),
                    labels=labels,
                    origin=r.get("origin", "real"),
                    domain=r.get("source", ""),
                )
            )
    return rows


def stratified_sample(rows: list[Example], n: int, seed: int) -> list[Example]:
    """Up to ``n`` rows, keeping the label proportions."""
    if len(rows) <= n:
        return list(rows)
    rng = random.Random(seed)
    by: dict[str, list[Example]] = {}
    for r in rows:
        by.setdefault(r.label, []).append(r)
    out = []
    for label, group in sorted(by.items()):
        k = round(n * len(group) / len(rows))
        out.extend(rng.sample(group, min(k, len(group))))
    rng.shuffle(out)
    return out
