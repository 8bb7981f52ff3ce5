"""One week's themes: cluster, label, describe, and carry ids over from last week (pure).

Continuity: each of this week's clusters takes the id of the most similar
theme of last week (greedy one-to-one by centroid similarity, above the
calibrated ``continuity_similarity``); failing that, the live theme most of
its members were assigned to in the stream (so digest and stream share
ids), failing that a new id derived from its members (so rebuilding a week
gives the same ids). A theme is emerging when it is new, or grew by
``emerging_growth`` or more, with at least ``emerging_min_volume`` messages;
fading when it shrank to ``fading_ratio`` of last week or less, or is gone
(a gone theme is kept with size 0 so the digest can say so).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from consumers.themes.clustering import Clusterer
from consumers.themes.keywords import KeywordExtractor
from consumers.themes.types import WeeklyTheme, WeekFeedback
from topics.settings import WeeklyThemeSettings


_SETTINGS = WeeklyThemeSettings()


@dataclass(frozen=True)
class WeeklyRules:
    # Defaults are the settings' own (the calibrated continuity among them), so the two cannot drift apart.
    continuity_similarity: float = _SETTINGS.continuity_similarity
    emerging_growth: float = _SETTINGS.emerging_growth
    emerging_min_volume: int = _SETTINGS.emerging_min_volume
    fading_ratio: float = _SETTINGS.fading_ratio
    keywords: int = _SETTINGS.keywords
    quotes: int = _SETTINGS.quotes
    quote_chars: int = 160


@dataclass
class WeekResult:
    week: str
    themes: list[WeeklyTheme]  # this week's, by size, then last week's gone ones
    members: dict[str, str]  # event id → theme id
    total: int
    unclustered: int


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def match_previous(centroids: Sequence[np.ndarray], previous: Sequence[WeeklyTheme], threshold: float) -> list[int | None]:
    """For each centroid, the index in ``previous`` it continues (greedy one-to-one), or None."""
    matches: list[int | None] = [None] * len(centroids)
    if not centroids or not previous:
        return matches
    a = np.stack([_unit(c) for c in centroids])
    b = np.stack([_unit(p.centroid) for p in previous])
    sims = a @ b.T
    used_a, used_b = set(), set()
    for flat in np.argsort(-sims, axis=None):
        i, j = divmod(int(flat), sims.shape[1])
        if sims[i, j] < threshold:
            break
        if i in used_a or j in used_b:
            continue
        matches[i] = j
        used_a.add(i)
        used_b.add(j)
    return matches


def representative_quotes(texts: Sequence[str], embeddings: np.ndarray, centroid: np.ndarray, count: int, max_chars: int) -> list[str]:
    """The members closest to the centroid, distinct texts only, clipped."""
    order = np.argsort(-(embeddings @ _unit(centroid)), kind="stable")
    quotes: list[str] = []
    for i in order:
        text = " ".join(texts[i].split())
        text = text if len(text) <= max_chars else text[: max_chars - 1] + "…"
        if text and text not in quotes:
            quotes.append(text)
        if len(quotes) == count:
            break
    return quotes


def weekly_theme_id(week: str, event_ids: Sequence[str]) -> str:
    """Id of a theme first seen this week, from its members: rebuilding a week gives the same ids."""
    digest = hashlib.sha1("\n".join([week, *sorted(event_ids)]).encode()).hexdigest()
    return f"th-{digest[:12]}"


def build_week(
    week: str,
    feedback: WeekFeedback,
    previous: Sequence[WeeklyTheme],
    clusterer: Clusterer,
    keywords: KeywordExtractor,
    rules: WeeklyRules = WeeklyRules(),
) -> WeekResult:
    labels = clusterer.cluster(feedback.embeddings) if len(feedback) else np.zeros(0, dtype=np.int64)
    clusters = [np.flatnonzero(labels == k) for k in range(int(labels.max()) + 1)] if len(labels) else []
    centroids = [feedback.embeddings[idx].mean(0) for idx in clusters]
    previous = [p for p in previous if p.size > 0]
    matches = match_previous(centroids, previous, rules.continuity_similarity)
    terms = keywords.keywords([[feedback.texts[i] for i in idx] for idx in clusters], top=rules.keywords)

    taken = {previous[m].theme_id for m in matches if m is not None}
    previous_by_id = {p.theme_id: p for p in previous}
    themes: list[WeeklyTheme] = []
    members: dict[str, str] = {}
    for idx, centroid, match, words in zip(clusters, centroids, matches, terms):
        if match is not None:
            theme_id, before = previous[match].theme_id, previous[match].size
        else:
            live = Counter(feedback.live_theme_ids[i] for i in idx if feedback.live_theme_ids[i])
            candidates = [t for t, _ in live.most_common() if t not in taken]
            theme_id = candidates[0] if candidates else weekly_theme_id(week, [feedback.event_ids[i] for i in idx])
            # The stream may have kept a theme that the centroid match missed: that is continuity too.
            before = previous_by_id[theme_id].size if theme_id in previous_by_id else 0
            taken.add(theme_id)
        size = len(idx)
        emerging = size >= rules.emerging_min_volume and (before == 0 or size >= rules.emerging_growth * before)
        fading = before > 0 and size <= rules.fading_ratio * before
        status = "emerging" if emerging else "new" if before == 0 else "fading" if fading else "steady"
        themes.append(
            WeeklyTheme(
                theme_id=theme_id,
                week=week,
                size=size,
                previous_size=before,
                centroid=centroid.astype(np.float32),
                keywords=words,
                quotes=representative_quotes([feedback.texts[i] for i in idx], feedback.embeddings[idx], centroid, rules.quotes, rules.quote_chars),
                sentiment_mix=dict(Counter(feedback.sentiments[i] for i in idx)),
                issue_mix=dict(Counter(feedback.primary_issues[i] for i in idx)),
                channel_mix=dict(Counter(feedback.channels[i] for i in idx)),
                emerging=emerging,
                fading=fading,
                status=status,
            )
        )
        members.update((feedback.event_ids[i], theme_id) for i in idx)
    themes.sort(key=lambda t: (-t.size, t.theme_id))
    continued = {t.theme_id for t in themes}
    for p in previous:
        if p.theme_id not in continued:
            themes.append(
                WeeklyTheme(
                    theme_id=p.theme_id, week=week, size=0, previous_size=p.size, centroid=p.centroid, keywords=p.keywords,
                    quotes=[], sentiment_mix={}, issue_mix={}, channel_mix={}, emerging=False, fading=True, status="gone",
                )
            )
    return WeekResult(week, themes, members, len(feedback), int((labels < 0).sum()))
