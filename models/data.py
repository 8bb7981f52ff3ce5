"""Training data: the real labelled sets in ../shared/data and the issue-type set in data/issue_type.

Everything is deduplicated on a normalised key (NFKC, lower case, only letters and
digits) *before* any split, across files, so near-identical reviews never sit on both
sides of a split. Rows whose key maps to conflicting labels are dropped.
"""

from __future__ import annotations

import csv
import json
import random
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from models.taxonomy import ISSUE_TYPES, SENTIMENTS

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


def default_shared_data_dir() -> Path:
    here = Path(__file__).resolve().parent.parent
    for cand in (here.parent / "shared" / "data", here / "shared" / "data"):
        if cand.is_dir():
            return cand
    return here.parent / "shared" / "data"


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


def load_sentiment_sources(data_dir: Path | None = None) -> list[Example]:
    """All sentiment rows, labelled negative/neutral/positive, with their domain."""
    d = Path(data_dir) if data_dir else default_shared_data_dir()
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


WRITTEN_SENTIMENT_SOURCE = "written_sentiment"
BINARY_SENTIMENTS = ("negative", "positive")


def load_written_sentiment(folder: Path) -> list[Example]:
    """Self-written reviews of domains the real sets lack (``data/sentiment_written/*.jsonl``).

    Each line: ``{"text", "label": negative|positive, "domain"}``; the domain is kept as
    ``written/<domain>`` so that a run can hold one out (``--holdout-domain written/hotel``).
    """
    rows: list[Example] = []
    for path in sorted(Path(folder).glob("*.jsonl")):
        with path.open(encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                r = json.loads(line)
                if not r.get("text") or r.get("label") not in BINARY_SENTIMENTS or not r.get("domain"):
                    raise ValueError(f"{path}:{n}: a written review needs text, a binary label and a domain")
                rows.append(Example(r["text"], r["label"], WRITTEN_SENTIMENT_SOURCE, origin="written",
                                    domain=f"written/{r['domain']}"))
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


def check_labels(label: str) -> None:
    if label not in SENTIMENTS:
        raise ValueError(label)
