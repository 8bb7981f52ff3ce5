"""Lexical bursts: stories the topic embedding spreads out, found by their words (pure).

The story scan (consumers/themes/changes.py) finds a change only where one node of the embedding's tree is
mostly the story. Some stories are not: "missing items" (少送, 漏送) and "spilled soup" (洒了) are complaints
the topic embedding places among all the other delivery complaints, so no node carries their growth. Their
words do: the number of messages that say 少送 grows from one week to the next.

1. Each message is read as its set of short phrases (``KeywordExtractor.phrases``: 2–3 character runs, stop
   and opinion words left out). Messages already in a flagged story (either way) are left out: what a story
   explains is not tested again, so a phrase of the payment story is not a second entry beside it.
2. A phrase's messages split between the weeks binomially when nothing changed (the story scan's test:
   b ~ Binomial(a + b, n₂ / (n₁ + n₂)) over the messages left). Emerging and fading take the scan's volume
   and growth rules; the p-value must be below ``significance`` divided by the number of phrases tested
   (Bonferroni: a week holds hundreds of testable phrases, thousands at scale; the tree's candidates are fewer).
3. The most significant phrase is taken first and its messages (both weeks) leave the test, then the
   phrases are tested again on what is left (a story's other words, 商家 or 外卖 beside 少送, then fall back),
   up to ``max_bursts`` times.
4. One story, one entry: a phrase a story of the same direction already says (that story holds at least
   ``join_share`` of the messages saying it in the week the change shows) is that story's: what is left of
   it joins the story (电池 beside a fading battery story). The words decide, not the embedding: a 没送
   burst's centroid is as close to the payment story (0.48) as one story's pieces are, both being
   complaints. Bursts of one direction whose centroids reach ``merge_similarity`` are merged (少送 and 没送),
   and so are the scan's stories again once bursts grew them (the scan's own rule: a story it found in two
   pieces may only now be that close).
5. One problem told in other words: a burst (merged) whose centroid is as close to a story of its direction as a
   theme's own clusters are (``story_similarity``, the clusterer's "one problem" bar, far above the 0.48 of two
   different complaints) is that story's other piece and joins it: 没送 beside the scan's fading piece whose
   messages say 少送 (0.76–0.80), where neither holds the other's phrase.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from consumers.themes.changes import Story, change_p_values, merge_by_direction


@dataclass(frozen=True)
class BurstRules:
    """Built from the weekly settings (``consumers.themes.weekly.burst_rules``), which hold the defaults."""

    significance: float
    emerging_growth: float
    emerging_min_volume: int
    fading_ratio: float
    fading_min_volume: int
    merge_similarity: float | None
    join_share: float
    max_bursts: int
    story_similarity: float | None


def _counts(phrases: Sequence[set[str]], alive: np.ndarray) -> Counter:
    counts: Counter[str] = Counter()
    for row in np.flatnonzero(alive):
        counts.update(phrases[row])
    return counts


def burst_p_values(a: np.ndarray, b: np.ndarray, n1: int, n2: int, rules: BurstRules) -> tuple[np.ndarray, np.ndarray]:
    """Per phrase with ``a`` messages last week and ``b`` this week: the p-value of its change (the story scan's
    test and rules, ``changes.change_p_values``) and its direction (1 growth, -1 fall, 0 testable neither way)."""
    p_grow, p_fall = change_p_values(a, b, n1, n2, rules)
    testable = (np.asarray(b) >= rules.emerging_min_volume) | (np.asarray(a) >= rules.fading_min_volume)
    return np.minimum(p_grow, p_fall), np.where(p_grow <= p_fall, 1, -1) * testable


def detect_bursts(previous_phrases: Sequence[set[str]], current_phrases: Sequence[set[str]], previous: np.ndarray,
                  current: np.ndarray, stories: Sequence[Story], rules: BurstRules) -> list[Story]:
    """``stories`` (the scan's, grown by the bursts that are theirs) followed by the stories carried by a phrase
    (module docstring). ``previous`` / ``current``: the weeks' unit vectors, for merging bursts."""
    grown = [Story(s.kind, s.before, s.now, s.p_value) for s in stories]
    n1, n2 = len(previous_phrases), len(current_phrases)
    if not n1 or not n2:
        return grown
    alive1, alive2 = np.ones(n1, bool), np.ones(n2, bool)
    for story in stories:
        alive1[story.before] = False
        alive2[story.now] = False
    bursts: list[Story] = []
    for phrase, burst in _greedy_bursts(previous_phrases, current_phrases, alive1, alive2, rules):
        home = _home(phrase, burst.kind, grown + bursts, previous_phrases, current_phrases, rules.join_share)
        if home is None:
            bursts.append(burst)
        else:
            home.before, home.now = np.union1d(home.before, burst.before), np.union1d(home.now, burst.now)
    pooled = np.vstack([np.asarray(previous, np.float32), np.asarray(current, np.float32)])
    bursts = _merge(pooled, n1, bursts, rules.merge_similarity)
    bursts = _absorb(pooled, n1, grown, bursts, rules.story_similarity)
    # A story grown by a burst may now be as close to another story as one story's pieces (the scan's rule, again).
    return _merge(pooled, n1, grown, rules.merge_similarity) + bursts


def _greedy_bursts(previous_phrases: Sequence[set[str]], current_phrases: Sequence[set[str]], alive1: np.ndarray,
                   alive2: np.ndarray, rules: BurstRules) -> list[tuple[str, Story]]:
    """Steps 2–3: the most significant phrase first, its messages out (``alive1`` / ``alive2`` updated), the rest
    tested again. Returns each phrase with its messages left when it was taken."""
    c1, c2 = _counts(previous_phrases, alive1), _counts(current_phrases, alive2)
    names = sorted(set(c1) | set(c2))
    if not names or not alive1.any() or not alive2.any():
        return []
    a = np.array([c1.get(g, 0) for g in names])
    b = np.array([c2.get(g, 0) for g in names])
    p, direction = burst_p_values(a, b, int(alive1.sum()), int(alive2.sum()), rules)
    tested = int((direction != 0).sum()) or 1
    threshold = rules.significance / tested
    # Only a phrase significant before any message left can be after (its counts only fall).
    candidates = [names[k] for k in np.flatnonzero(p < threshold)]
    rows1 = _rows_of(previous_phrases, candidates)
    rows2 = _rows_of(current_phrases, candidates)
    found: list[tuple[str, Story]] = []
    while candidates and len(found) < rules.max_bursts:
        a = np.array([int(alive1[rows1[g]].sum()) for g in candidates])
        b = np.array([int(alive2[rows2[g]].sum()) for g in candidates])
        p, direction = burst_p_values(a, b, int(alive1.sum()), int(alive2.sum()), rules)
        best = int(np.argmin(p))
        if p[best] >= threshold:
            break
        g = candidates.pop(best)
        before, now = rows1[g][alive1[rows1[g]]], rows2[g][alive2[rows2[g]]]
        alive1[before] = False
        alive2[now] = False
        found.append((g, Story("emerging" if direction[best] > 0 else "fading", before, now, float(p[best]))))
    return found


def _home(phrase: str, kind: str, stories: Sequence[Story], previous_phrases: Sequence[set[str]],
          current_phrases: Sequence[set[str]], share: float) -> Story | None:
    """The story of this direction holding at least ``share`` of the messages that say ``phrase`` in the week the
    change shows (this week for emerging, last week for fading), the most if several: the phrase is that story's
    (电池 beside a fading battery story), so what is left of it there joins that story, not a second entry."""
    week = current_phrases if kind == "emerging" else previous_phrases
    saying = sum(phrase in mine for mine in week) or 1
    best, best_share = None, share
    for story in stories:
        if story.kind != kind:
            continue
        rows = story.now if kind == "emerging" else story.before
        held = sum(phrase in week[i] for i in rows.tolist()) / saying
        if held >= best_share:
            best, best_share = story, held
    return best


def _absorb(pooled: np.ndarray, n1: int, stories: list[Story], bursts: list[Story], threshold: float | None) -> list[Story]:
    """Step 5: a burst whose centroid reaches ``threshold`` with a story of its direction is that story's other piece
    (the words it says are not the story's words: 没送 beside a piece saying 少送): it joins the most similar one
    (``stories`` grown in place). Returns the bursts left."""
    if threshold is None or not stories or not bursts:
        return bursts
    left: list[Story] = []
    for burst in bursts:
        home = _nearest(pooled, n1, burst, [s for s in stories if s.kind == burst.kind], threshold)
        if home is None:
            left.append(burst)
        else:
            home.before, home.now = np.union1d(home.before, burst.before), np.union1d(home.now, burst.now)
            home.p_value = min(home.p_value, burst.p_value)
    return left


def _nearest(pooled: np.ndarray, n1: int, burst: Story, stories: Sequence[Story], threshold: float) -> Story | None:
    """The story whose normalised centroid (both weeks' messages) is most similar to the burst's, if it reaches
    ``threshold``."""
    def unit_centroid(story: Story) -> np.ndarray:
        c = pooled[np.r_[story.before, story.now + n1]].mean(0)
        return c / (np.linalg.norm(c) or 1.0)

    if not stories:
        return None
    mine = unit_centroid(burst)
    sims = [float(unit_centroid(s) @ mine) for s in stories]
    best = int(np.argmax(sims))
    return stories[best] if sims[best] >= threshold else None


def _rows_of(phrases: Sequence[set[str]], wanted: Sequence[str]) -> dict[str, np.ndarray]:
    want = set(wanted)
    rows: dict[str, list[int]] = {g: [] for g in wanted}
    for row, mine in enumerate(phrases):
        for g in mine & want:
            rows[g].append(row)
    return {g: np.asarray(r, dtype=np.int64) for g, r in rows.items()}


def _merge(pooled: np.ndarray, n1: int, stories: list[Story], threshold: float | None) -> list[Story]:
    """Step 4: stories of one direction whose centroids (both weeks' messages) reach ``threshold`` are one story
    (少送 and 没送); most significant first."""
    return merge_by_direction(pooled, n1, [(s.kind, np.r_[s.before, s.now + n1], s.p_value) for s in stories], threshold)
