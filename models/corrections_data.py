"""Corrections as data: which ones are held out, the training rows they add, the evaluation rows
they give, and how unsure a stored prediction was (what ``review`` exports first).

Pure functions on plain records (this package imports nothing of the stream side).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from models.data import Example, dedup_key
from models.taxonomy import ISSUE_TYPES, SENTIMENTS

ORIGIN = "correction"


@dataclass(frozen=True)
class LabelledText:
    """The latest correction of one event: the labels a person gave its text."""

    event_id: str
    text: str
    primary_issue: str
    issue_types: tuple[str, ...]  # primary first
    sentiment: str

    def __post_init__(self) -> None:
        if self.primary_issue not in ISSUE_TYPES or not set(self.issue_types) <= set(ISSUE_TYPES):
            raise ValueError(f"{self.event_id}: issue types outside the taxonomy: {self.issue_types}")
        if self.sentiment not in SENTIMENTS:
            raise ValueError(f"{self.event_id}: sentiment {self.sentiment!r} is not one of {SENTIMENTS}")


def heldout_fraction(event_id: str) -> float:
    """A stable number in [0, 1) for an event id: the same id always falls on the same side."""
    return int.from_bytes(hashlib.sha256(event_id.encode("utf-8")).digest()[:8], "big") / 2**64


def split(corrections: Iterable[LabelledText], heldout_share: float) -> tuple[list[LabelledText], list[LabelledText]]:
    """(train, held out): an event is held out when its id hashes below ``heldout_share``.

    Paraphrases of one held-out text that were corrected as other events may still be trained on:
    the split is by event, like the review process that produced them.
    """
    train, held = [], []
    for c in corrections:
        (held if heldout_fraction(c.event_id) < heldout_share else train).append(c)
    return train, held


def training_examples(corrections: Sequence[LabelledText], weight: int = 1) -> list[Example]:
    """Issue-type training rows, each correction ``weight`` times (a handful of human labels among
    thousands of rows must be able to move the heads)."""
    rows = []
    for c in corrections:
        for _ in range(weight):
            rows.append(Example(c.text, c.primary_issue, f"correction:{c.event_id}", labels=list(c.issue_types),
                                origin=ORIGIN, domain=ORIGIN))
    return rows


def without_texts(rows: Sequence[Example], texts: Iterable[str]) -> list[Example]:
    """``rows`` less those whose text a person corrected: the correction replaces the old label."""
    keys = {dedup_key(t) for t in texts}
    return [r for r in rows if dedup_key(r.text) not in keys]


def write_eval_files(corrections: Sequence[LabelledText], folder: Path) -> dict[str, Path]:
    """The held-out corrections as ``eval`` files (``models.evaluation`` format): {task: path}; none if empty."""
    if not corrections:
        return {}
    folder.mkdir(parents=True, exist_ok=True)
    files = {"issue_type": folder / "corrections_issue_type.jsonl", "sentiment": folder / "corrections_sentiment.jsonl"}
    files["issue_type"].write_text("".join(json.dumps({"text": c.text, "label": c.primary_issue,
                                                       "labels": list(c.issue_types)}, ensure_ascii=False) + "\n"
                                           for c in corrections), encoding="utf-8")
    files["sentiment"].write_text("".join(json.dumps({"text": c.text, "label": c.sentiment}, ensure_ascii=False) + "\n"
                                          for c in corrections), encoding="utf-8")
    return files


# --- how unsure a stored prediction was ------------------------------------------------------

# Sentiment is stored as a score (P(positive) − P(negative)) and a label. Negative and positive
# flip at a score of 0; a neutral prediction gets less sure as the score leaves 0, and this is
# where it is taken to reach the polar labels.
NEUTRAL_EDGE = 0.5


def issue_margin(issue_scores: Mapping[str, float]) -> float:
    """Probability of the most probable issue type minus the second's (0: a coin toss)."""
    top = sorted((float(p) for p in issue_scores.values()), reverse=True) + [0.0, 0.0]
    return round(top[0] - top[1], 6)


def sentiment_margin(label: str, score: float) -> float:
    """How far the stored sentiment score is from the nearest point where the label would flip."""
    if label == "neutral":
        return round(max(0.0, NEUTRAL_EDGE - abs(score)), 6)
    return round(abs(score), 6)


def least_confident(predictions: Sequence[Mapping], limit: int) -> list[dict]:
    """The ``limit`` predictions with the smallest margin (issue type or sentiment, whichever is
    smaller), least confident first; ties by event id. Adds ``issue_margin`` and ``sentiment_margin``."""
    scored = []
    for p in predictions:
        im = issue_margin(p["issue_scores"])
        sm = sentiment_margin(p["sentiment"], float(p["sentiment_score"]))
        scored.append((min(im, sm), p["event_id"], {**p, "issue_margin": im, "sentiment_margin": sm}))
    scored.sort(key=lambda item: (item[0], item[1]))
    return [row for _, _, row in scored[:limit]]
