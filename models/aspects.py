"""Aspect-level sentiment: the writer's sentiment about each issue type a message raises.

In 物流很快但是质量很差 the verdict is negative, but logistics is praised and product quality
blamed. The message is cut into clauses (punctuation, and before contrast words such as 但是 /
不过 / 就是, which open the clause they belong to); each clause is read by the lexical heads the
model already has — the character n-gram issue-type view and the n-gram sentiment head — so no
second encoder pass is needed. An aspect's sentiment is the sentiment of the clauses that speak
of it, each weighted by how strongly it does; when no clause is clearly about the aspect (or the
message is one clause), the aspect takes the message's sentiment.

``praise`` is positive by definition, a ``suggestion`` is neutral (an idea, not a verdict),
``other`` takes the message's sentiment.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

from models.taxonomy import ISSUE_TYPES, SENTIMENTS

# Contrast words that open a clause start a new one and stay with it ("物流很快但是质量很差").
# 倒是 / 却 / 就是 follow their subject ("骑手倒是挺客气"), so they do not cut.
_CONTRAST = "但是|可是|不过|可惜|然而|只是|但"
_CLAUSE_BREAK = re.compile(rf"[，,。.!！?？;；~～\n\r]+|(?<!不)(?=(?:{_CONTRAST}))")
MIN_CLAUSE_CHARS = 2
FIXED = {"praise": "positive", "suggestion": "neutral"}
# The lexical heads learnt praise of a product as ``praise`` (the taxonomy's label for a message
# without complaint), so a clause like 东西很好 speaks of product quality partly through that
# column — at half weight, so that praise of staff (服务很好) stays with service_attitude.
PRAISE_AS_PRODUCT = 0.5


def split_clauses(text: str) -> list[str]:
    """Clauses of at least MIN_CLAUSE_CHARS characters; a shorter piece joins the clause after it."""
    pieces = [p.strip() for p in _CLAUSE_BREAK.split(text)]
    clauses: list[str] = []
    carry = ""
    for piece in pieces:
        piece = carry + piece
        if len(piece) < MIN_CLAUSE_CHARS:
            carry = piece
            continue
        clauses.append(piece)
        carry = ""
    if carry and clauses:
        clauses[-1] += carry
    return clauses or [text]


def aspect_sentiments(
    texts: Sequence[str],
    labels: Sequence[Sequence[str]],
    overall: np.ndarray,
    clause_issue_probs: Callable[[list[str]], np.ndarray] | None,
    clause_sentiment_probs: Callable[[list[str]], np.ndarray] | None,
    min_relevance: float = 0.1,
) -> list[dict[str, str]]:
    """One {issue type: sentiment} per text, for the labels predicted for it.

    ``overall``: (n, 3) message sentiment probabilities; the callables score a batch of clauses
    ((m, 11) issue-type and (m, 3) sentiment probabilities); without them every aspect takes the
    message's sentiment. ``min_relevance``: the issue-type
    probability a clause needs to count as speaking of an aspect.
    """
    clauses: list[str] = []
    spans: list[tuple[int, int]] = []
    readable = clause_issue_probs is not None and clause_sentiment_probs is not None
    for i, text in enumerate(texts):
        start = len(clauses)
        if readable and len(labels[i]) > 1:
            parts = split_clauses(text)
            if len(parts) > 1:
                clauses += parts
        spans.append((start, len(clauses)))
    issue = clause_issue_probs(clauses) if clauses else np.zeros((0, len(ISSUE_TYPES)))
    sent = clause_sentiment_probs(clauses) if clauses else np.zeros((0, len(SENTIMENTS)))
    out = []
    for i, labs in enumerate(labels):
        verdict = SENTIMENTS[int(np.argmax(overall[i]))]
        a, b = spans[i]
        aspects = {lab: FIXED.get(lab, verdict) for lab in labs}
        open_labels = [lab for lab in labs if lab not in FIXED and lab != "other"]
        if b - a > 1 and open_labels:
            # Each clause speaks of the predicted aspect its words point to most (if clearly enough);
            # an aspect's sentiment is that of its clauses together.
            rel = issue[a:b][:, [ISSUE_TYPES.index(lab) for lab in open_labels]]
            if "product_quality" in open_labels:
                k = open_labels.index("product_quality")
                rel[:, k] = np.maximum(rel[:, k], PRAISE_AS_PRODUCT * issue[a:b, ISSUE_TYPES.index("praise")])
            owner = rel.argmax(1)
            for k, lab in enumerate(open_labels):
                mine = (owner == k) & (rel[:, k] >= min_relevance)
                if mine.any():
                    aspects[lab] = SENTIMENTS[int(np.argmax(sent[a:b][mine].sum(0)))]
        out.append(aspects)
    return out
