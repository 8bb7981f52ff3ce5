"""One week's themes: cluster, merge, label, describe, carry ids over, judge change (pure).

- **One problem, one entry**: clusters whose normalised centroids are as similar as two
  samples of one labelled topic (``continuity_similarity``, calibrated) are merged before
  anything is labelled.
- **Continuity only by similarity**: a cluster keeps the id of last week's theme whose
  centroid it matches (greedy one-to-one above ``continuity_similarity``). Otherwise it is a
  new theme: it takes the live theme most of its members joined in the stream (so digest and
  alerter share ids) unless that id was one of last week's themes, else an id derived from
  its members (a rebuild gives the same ids). No id is ever copied without the similarity.
- **Week-over-week counts by nearest centroid**: a theme's volume in either week is the
  number of that week's messages nearest to its centroid (and similar enough), not the size
  of whatever cluster last week's clustering happened to produce, so a theme split or merged
  differently by clustering is not news. This week's volume of last week's themes is
  counted the same way, for fading.
- **Emerging / fading are volume and significance**: expected = last week's count scaled
  by the change in total volume; emerging when the count is ≥ ``emerging_min_volume``, ≥
  ``emerging_growth`` × expected and a one-sided Poisson test against expected gives
  p < ``significance``; fading when last week's count was ≥ ``fading_min_volume``, this
  week's is ≤ ``fading_ratio`` × expected and the lower-tail Poisson p < ``significance``.
  A first week (no previous snapshot) flags nothing: status ``first_week``.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from consumers.themes.bursts import BurstRules, detect_bursts
from consumers.themes.changes import Story, StoryRules, detect_stories
from consumers.themes.clustering import Clusterer, group_sums
from consumers.themes.keywords import KeywordExtractor
from consumers.themes.types import WeekFeedback, WeeklyTheme
from topics.settings import WeeklyThemeSettings

_SETTINGS = WeeklyThemeSettings()


@dataclass(frozen=True)
class WeeklyRules:
    # Defaults are the settings' own (the calibrated continuity among them), so the two cannot drift apart.
    continuity_similarity: float = _SETTINGS.continuity_similarity
    merge_centroid_similarity: float = _SETTINGS.merge_centroid_similarity
    member_similarity: float = _SETTINGS.member_similarity
    attach_similarity: float | None = _SETTINGS.attach_similarity
    story_merge_similarity: float | None = _SETTINGS.story_merge_similarity
    # Emerging / fading found on one tree of both weeks' messages (consumers/themes/changes.py) when last
    # week's messages are at hand; nodes as coherent as a theme (the clusterer's merge threshold) are tested.
    story_scan: bool = _SETTINGS.story_scan
    story_coherence: float = _SETTINGS.merge_similarity
    # Beside the story scan, phrases whose messages grow or fall significantly (consumers/themes/bursts.py).
    burst_test: bool = _SETTINGS.burst_test
    burst_significance: float = _SETTINGS.burst_significance
    burst_max_stories: int = _SETTINGS.burst_max_stories
    burst_join_share: float = _SETTINGS.burst_join_share
    burst_story_similarity: float | None = _SETTINGS.burst_story_similarity
    min_theme_size: int = _SETTINGS.min_theme_size
    micro_clusters: int = _SETTINGS.micro_clusters
    seed: int = _SETTINGS.seed
    emerging_growth: float = _SETTINGS.emerging_growth
    emerging_min_volume: int = _SETTINGS.emerging_min_volume
    fading_ratio: float = _SETTINGS.fading_ratio
    fading_min_volume: int = _SETTINGS.fading_min_volume
    significance: float = _SETTINGS.significance
    keywords: int = _SETTINGS.keywords
    quotes: int = _SETTINGS.quotes
    quote_duplicate_similarity: float = _SETTINGS.quote_duplicate_similarity
    quote_chars: int = 120


@dataclass
class WeekResult:
    week: str
    themes: list[WeeklyTheme]  # this week's, by size, then last week's gone ones
    members: dict[str, str]  # event id → theme id
    total: int
    unclustered: int
    first_week: bool = False


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def _units(m: np.ndarray) -> np.ndarray:
    return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)


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


def merge_similar(embeddings: np.ndarray, clusters: list[np.ndarray], threshold: float) -> list[np.ndarray]:
    """Merge clusters whose normalised centroids reach ``threshold`` (single pass of greedy
    agglomeration on centroids, recomputed after each merge); returned largest first."""
    groups = [np.asarray(c) for c in clusters]
    while len(groups) > 1:
        cents = _units(np.stack([embeddings[g].mean(0) for g in groups]))
        sims = cents @ cents.T
        np.fill_diagonal(sims, -np.inf)
        i, j = divmod(int(np.argmax(sims)), len(groups))
        if sims[i, j] < threshold:
            break
        groups[i] = np.concatenate([groups[i], groups[j]])
        del groups[j]
    return sorted(groups, key=lambda g: -len(g))


def attach_noise(embeddings: np.ndarray, labels: np.ndarray, threshold: float | None) -> np.ndarray:
    """Messages the clusterer left as noise join the cluster whose normalised centroid is nearest,
    when at least ``threshold`` similar (a lone review of a known subject belongs to it)."""
    labels = np.array(labels, copy=True)
    noise = np.flatnonzero(labels < 0)
    if threshold is None or not len(noise) or labels.max(initial=-1) < 0:
        return labels
    k = int(labels.max()) + 1
    sums = group_sums(labels[labels >= 0], embeddings[labels >= 0], k)
    sims = embeddings[noise] @ _units(sums).astype(np.float32).T
    best = np.argmax(sims, axis=1)
    ok = sims[np.arange(len(noise)), best] >= threshold
    labels[noise[ok]] = best[ok]
    return labels


def merge_flagged(embeddings: np.ndarray, clusters: list[np.ndarray], emerging: Sequence[bool], fading: Sequence[bool],
                  threshold: float, fading_source: Sequence[int | None] | None = None) -> list[np.ndarray]:
    """Clusters flagged the same way (both emerging, or both fading) whose normalised centroids reach
    ``threshold`` become one (greedy, most similar pair first); so do fading clusters whose lost volume came
    from the same theme of last week (``fading_source``: member overlap). The others stay as they are."""
    out = [np.asarray(c) for c in clusters]
    fading_groups: dict[object, list[int]] = {}
    for k, f in enumerate(fading):
        if f:
            source = fading_source[k] if fading_source is not None else None
            fading_groups.setdefault(("source", source) if source is not None else ("alone", k), []).append(k)
    joined_fading = [np.concatenate([out[k] for k in ks]) for ks in fading_groups.values()]
    flagged_emerging = [out[k] for k, f in enumerate(emerging) if f and not fading[k]]
    rest = [c for k, c in enumerate(out) if not emerging[k] and not fading[k]]
    pieces = merge_similar(embeddings, flagged_emerging, threshold) if len(flagged_emerging) > 1 else flagged_emerging
    fading_pieces = merge_similar(embeddings, joined_fading, threshold) if len(joined_fading) > 1 else joined_fading
    return sorted(rest + pieces + fading_pieces, key=lambda g: -len(g))


def fading_sources(previous_embeddings: np.ndarray, centroids: Sequence[np.ndarray], previous: Sequence[WeeklyTheme],
                   min_similarity: float) -> list[int | None]:
    """For each of this week's centroids: the theme of last week most of whose messages it took (of last
    week's messages nearest to it, the most are nearest to that theme's centroid), or None."""
    if not len(previous_embeddings) or not previous or not centroids:
        return [None] * len(centroids)
    now = np.asarray(previous_embeddings, dtype=np.float32) @ _units(np.stack(centroids).astype(np.float32)).T
    then = np.asarray(previous_embeddings, dtype=np.float32) @ _units(np.stack([p.centroid for p in previous]).astype(np.float32)).T
    mine, theirs = np.argmax(now, axis=1), np.argmax(then, axis=1)
    ok = now[np.arange(len(mine)), mine] >= min_similarity
    out: list[int | None] = []
    for k in range(len(centroids)):
        sel = theirs[ok & (mine == k)]
        out.append(int(np.bincount(sel).argmax()) if len(sel) else None)
    return out


def merge_gone(gone: list[WeeklyTheme], fading_now: Sequence[WeeklyTheme], threshold: float) -> list[WeeklyTheme]:
    """One fading story, one entry: a fading theme of last week that did not continue is dropped when a
    fading theme of this week is its story (centroids at ``threshold`` or more); the rest that are
    that similar to each other are listed once (sizes added, labels and quotes of the largest)."""
    kept = [g for g in gone if not (g.fading and any(float(_unit(g.centroid) @ _unit(f.centroid)) >= threshold for f in fading_now))]
    out: list[WeeklyTheme] = []
    for g in sorted(kept, key=lambda t: -t.previous_size):
        home = next((o for o in out if g.fading and o.fading and float(_unit(g.centroid) @ _unit(o.centroid)) >= threshold), None)
        if home is None:
            out.append(g)
            continue
        total = home.previous_size + g.previous_size
        home.centroid = ((home.centroid * home.previous_size + g.centroid * g.previous_size) / total).astype(np.float32)
        home.previous_size = total
        home.current_estimate += g.current_estimate
        home.sentiment_mix = dict(Counter(home.sentiment_mix) + Counter(g.sentiment_mix))
        home.issue_mix = dict(Counter(home.issue_mix) + Counter(g.issue_mix))
    return out


def nearest_counts(embeddings: np.ndarray, centroids: Sequence[np.ndarray], min_similarity: float) -> np.ndarray:
    """How many rows of ``embeddings`` have each centroid as their nearest, at ``min_similarity`` or more."""
    counts = np.zeros(len(centroids), dtype=np.int64)
    if len(embeddings) == 0 or not len(centroids):
        return counts
    sims = np.asarray(embeddings, dtype=np.float32) @ _units(np.stack(centroids).astype(np.float32)).T
    best = np.argmax(sims, axis=1)
    ok = sims[np.arange(len(best)), best] >= min_similarity
    np.add.at(counts, best[ok], 1)
    return counts


def poisson_sf(k: int, lam: float) -> float:
    """P(X ≥ k) for X ~ Poisson(lam)."""
    from scipy.stats import poisson

    return float(poisson.sf(k - 1, lam))


def poisson_cdf(k: int, lam: float) -> float:
    """P(X ≤ k) for X ~ Poisson(lam)."""
    from scipy.stats import poisson

    return float(poisson.cdf(k, lam))


def is_emerging(size: int, before: int, scale: float, rules: WeeklyRules) -> bool:
    # Expected from last week's count scaled by the week's volume; a floor of one message keeps
    # "new" from meaning "infinitely significant".
    expected = max(before * scale, 1.0)
    return size >= rules.emerging_min_volume and size >= rules.emerging_growth * expected and poisson_sf(size, expected) < rules.significance


def is_fading(size: int, before: int, scale: float, rules: WeeklyRules) -> bool:
    expected = before * scale
    return before >= rules.fading_min_volume and size <= rules.fading_ratio * expected and poisson_cdf(size, expected) < rules.significance


_PUNCT = re.compile(r"[\s\W_]+")


def _bigrams(text: str) -> set[str]:
    """The character bigrams of ``text`` without punctuation; a text too short for one is its own shingle."""
    key = _PUNCT.sub("", text)
    return {key[i : i + 2] for i in range(len(key) - 1)} or {key}


def bigram_jaccard(a: str, b: str) -> float:
    """Shared bigrams over all bigrams of the two texts (1.0: the same words, whatever the punctuation)."""
    left, right = _bigrams(a), _bigrams(b)
    return len(left & right) / len(left | right)


def _clip(text: str, max_chars: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def representative_quotes(texts: Sequence[str], embeddings: np.ndarray, centroid: np.ndarray, count: int, max_chars: int,
                          duplicate_similarity: float = _SETTINGS.quote_duplicate_similarity) -> list[str]:
    """The members closest to the centroid, clipped. A text that says what a chosen one says is not shown again:
    other punctuation (支付页面报错。 / 支付页面报错！) or a word changed (饭菜全凉了 / 饭菜都凉了), i.e. a
    character-bigram Jaccard similarity of ``duplicate_similarity`` or more. Fewer distinct texts: fewer quotes."""
    order = np.argsort(-(embeddings @ _unit(centroid)), kind="stable")
    quotes: list[str] = []
    for i in order:
        text = _clip(texts[i], max_chars)
        if text and all(bigram_jaccard(text, chosen) < duplicate_similarity for chosen in quotes):
            quotes.append(text)
        if len(quotes) == count:
            break
    return quotes


def aspect_mix(aspects: Sequence[dict[str, str]], members: Sequence[int]) -> dict[str, dict[str, int]]:
    """{issue type: {sentiment: count}} over the members' aspect sentiments (none recorded: empty)."""
    out: dict[str, Counter] = {}
    for i in members:
        if i < len(aspects):
            for issue, sentiment in aspects[i].items():
                out.setdefault(issue, Counter())[sentiment] += 1
    return {issue: dict(counts) for issue, counts in out.items()}


def weekly_theme_id(week: str, event_ids: Sequence[str]) -> str:
    """Id of a theme first seen this week, from its members: rebuilding a week gives the same ids."""
    digest = hashlib.sha1("\n".join([week, *sorted(event_ids)]).encode()).hexdigest()
    return f"th-{digest[:12]}"


def story_rules(rules: WeeklyRules) -> StoryRules:
    return StoryRules(
        coherence=rules.story_coherence, significance=rules.significance, emerging_growth=rules.emerging_growth,
        emerging_min_volume=rules.emerging_min_volume, fading_ratio=rules.fading_ratio, fading_min_volume=rules.fading_min_volume,
        merge_similarity=rules.story_merge_similarity, micro_clusters=rules.micro_clusters, seed=rules.seed,
    )


def burst_rules(rules: WeeklyRules) -> BurstRules:
    return BurstRules(
        significance=rules.burst_significance, emerging_growth=rules.emerging_growth, emerging_min_volume=rules.emerging_min_volume,
        fading_ratio=rules.fading_ratio, fading_min_volume=rules.fading_min_volume, merge_similarity=rules.story_merge_similarity,
        max_bursts=rules.burst_max_stories, join_share=rules.burst_join_share,
        story_similarity=rules.burst_story_similarity,
    )


def find_stories(feedback: WeekFeedback, previous_feedback: WeekFeedback, keywords: KeywordExtractor, rules: WeeklyRules) -> list[Story]:
    """The story scan's stories, then (``burst_test``) those carried by a phrase the scan's tree does not hold."""
    stories = detect_stories(previous_feedback.embeddings, feedback.embeddings, story_rules(rules))
    if not rules.burst_test:
        return stories
    before = [keywords.phrases(t) for t in previous_feedback.texts]
    now = [keywords.phrases(t) for t in feedback.texts]
    return detect_bursts(before, now, previous_feedback.embeddings, feedback.embeddings, stories, burst_rules(rules))


def carve_stories(embeddings: np.ndarray, clusters: list[np.ndarray], stories: Sequence[Story], min_size: int,
                  attach_similarity: float | None) -> tuple[list[np.ndarray], list[Story | None]]:
    """This week's themes with each story's messages as a theme of its own: the story's messages leave the
    clusters they were in; what is left of a cluster under ``min_size`` joins the nearest remaining cluster
    (at ``attach_similarity`` or more) or none. A fading story with nothing left this week gets no cluster.
    Returns the clusters and, for each, its story (None for a plain cluster)."""
    owner = np.full(len(embeddings), -1, dtype=np.int64)
    for k, story in enumerate(stories):
        free = story.now[owner[story.now] < 0]
        owner[free] = k
    rest = [idx[owner[idx] < 0] for idx in clusters]
    kept = [idx for idx in rest if len(idx) >= min_size]
    loose = np.concatenate([idx for idx in rest if 0 < len(idx) < min_size] or [np.zeros(0, dtype=np.int64)])
    if len(loose) and kept and attach_similarity is not None:
        cents = _units(np.stack([embeddings[idx].mean(0) for idx in kept]).astype(np.float32))
        sims = np.asarray(embeddings[loose], dtype=np.float32) @ cents.T
        best = np.argmax(sims, axis=1)
        ok = sims[np.arange(len(loose)), best] >= attach_similarity
        for k in range(len(kept)):
            extra = loose[ok & (best == k)]
            if len(extra):
                kept[k] = np.sort(np.concatenate([kept[k], extra]))
    out: list[np.ndarray] = []
    story_of: list[Story | None] = []
    for k, story in enumerate(stories):
        idx = np.flatnonzero(owner == k)
        if len(idx):
            out.append(idx)
            story_of.append(story)
    out += kept
    story_of += [None] * len(kept)
    return out, story_of


def build_week(
    week: str,
    feedback: WeekFeedback,
    previous: Sequence[WeeklyTheme],
    clusterer: Clusterer,
    keywords: KeywordExtractor,
    rules: WeeklyRules = WeeklyRules(),
    previous_feedback: WeekFeedback | None = None,
) -> WeekResult:
    """``previous``: last week's snapshot (empty: this is the first week); ``previous_feedback``:
    last week's messages, for the week-over-week counts and the story scan (without them, matched
    themes compare with last week's theme size, cluster by cluster)."""
    labels = clusterer.cluster(feedback.embeddings) if len(feedback) else np.zeros(0, dtype=np.int64)
    labels = attach_noise(feedback.embeddings, labels, rules.attach_similarity)
    clusters = [np.flatnonzero(labels == k) for k in range(int(labels.max()) + 1)] if len(labels) else []
    clusters = merge_similar(feedback.embeddings, clusters, rules.merge_centroid_similarity)
    have_last = previous_feedback is not None and len(previous_feedback) > 0
    # Nothing to compare with: no snapshot of last week and none of its messages.
    first_week = not previous and not have_last
    previous = [p for p in previous if p.size > 0]
    last_total = len(previous_feedback) if have_last else sum(p.size for p in previous)
    scale = len(feedback) / last_total if last_total else 1.0
    scan = rules.story_scan and have_last and not first_week
    stories: list[Story] = find_stories(feedback, previous_feedback, keywords, rules) if scan else []
    story_of: list[Story | None] = [None] * len(clusters)
    if scan:
        clusters, story_of = carve_stories(feedback.embeddings, clusters, stories, rules.min_theme_size, rules.attach_similarity)

    def story_centroid(idx: np.ndarray, story: Story | None) -> np.ndarray:
        if story is None or story.kind != "fading":
            return feedback.embeddings[idx].mean(0)
        # What faded is last week's: the theme's direction is that of all its messages, both weeks.
        both = np.vstack([previous_feedback.embeddings[story.before], feedback.embeddings[idx]])
        return both.mean(0)

    def changes(clusters: list[np.ndarray]):
        centroids = [story_centroid(idx, st) for idx, st in zip(clusters, story_of)]
        matches = match_previous(centroids, previous, rules.continuity_similarity)
        if have_last:
            # Both weeks counted the same way: messages nearest to this week's centroids.
            before = nearest_counts(previous_feedback.embeddings, centroids, rules.member_similarity)
            now = nearest_counts(feedback.embeddings, centroids, rules.member_similarity)
        else:
            before = np.array([previous[m].size if m is not None else 0 for m in matches], dtype=np.int64)
            now = np.array([len(idx) for idx in clusters], dtype=np.int64)
        if scan:
            # The story scan decides: a story's theme is flagged with its own counts, nothing else is.
            before = np.array([len(st.before) if st is not None else b for st, b in zip(story_of, before)], dtype=np.int64)
            emerging = [st is not None and st.kind == "emerging" for st in story_of]
            fading = [st is not None and st.kind == "fading" for st in story_of]
            return centroids, matches, before, now, emerging, fading
        # Both of this week's measures (cluster size, nearest-centroid count) must agree: the
        # smaller one is tested for growth, the larger one for a drop.
        emerging = [not first_week and is_emerging(min(len(idx), int(n)), int(b), scale, rules) for idx, n, b in zip(clusters, now, before)]
        fading = [not first_week and is_fading(max(len(idx), int(n)), int(b), scale, rules) for idx, n, b in zip(clusters, now, before)]
        return centroids, matches, before, now, emerging, fading

    centroids, matches, before_counts, now_counts, emerging_flags, fading_flags = changes(clusters)
    if not first_week and not scan and rules.story_merge_similarity is not None:
        # One problem, one entry: a story the clustering cut in pieces shows as several similar pieces
        # changing the same way; they are one theme.
        sources = fading_sources(previous_feedback.embeddings, centroids, previous, rules.member_similarity) if have_last else None
        merged = merge_flagged(feedback.embeddings, clusters, emerging_flags, fading_flags, rules.story_merge_similarity, sources)
        if len(merged) != len(clusters):
            clusters = merged
            story_of = [None] * len(clusters)
            centroids, matches, before_counts, now_counts, emerging_flags, fading_flags = changes(clusters)

    def member_texts(idx: np.ndarray, story: Story | None) -> list[str]:
        # A fading story is labelled by what faded (last week's messages), not by what is left of it.
        own = [feedback.texts[i] for i in idx]
        return [previous_feedback.texts[i] for i in story.before] + own if story is not None and story.kind == "fading" else own

    texts_of = [member_texts(idx, st) for idx, st in zip(clusters, story_of)]
    # A fading story with nothing left this week is listed from last week's messages alone.
    gone_stories = [st for st in stories if st.kind == "fading" and not any(st is o for o in story_of)]
    gone_texts = [[previous_feedback.texts[i] for i in st.before] for st in gone_stories]
    terms = keywords.keywords(texts_of + gone_texts, top=rules.keywords)
    gone_terms = terms[len(texts_of):]
    terms = terms[: len(texts_of)]

    previous_ids = {p.theme_id for p in previous}
    taken = {previous[m].theme_id for m in matches if m is not None}
    themes: list[WeeklyTheme] = []
    members: dict[str, str] = {}
    for idx, centroid, match, words, before, now, emerging, fading, story, texts in zip(
            clusters, centroids, matches, terms, before_counts, now_counts, emerging_flags, fading_flags, story_of, texts_of):
        before, now = int(before), int(now)
        if have_last and story is None and now > 0:
            # Last week's count is of messages nearest to the centroid; the cluster's own size is counted
            # otherwise (average linkage). Shown beside the size, it is put on the size's footing (the same
            # share of nearest-centroid messages in both weeks), so 40 → 81 is not read off two measures.
            before = round(before * len(idx) / now)
        if match is not None:
            theme_id = previous[match].theme_id
        else:
            live = Counter(feedback.live_theme_ids[i] for i in idx if feedback.live_theme_ids[i])
            candidates = [t for t, _ in live.most_common() if t not in taken and t not in previous_ids]
            theme_id = candidates[0] if candidates else weekly_theme_id(week, [feedback.event_ids[i] for i in idx])
            taken.add(theme_id)
        size = len(idx)
        if first_week:
            status = "first_week"
        else:
            status = "emerging" if emerging else "fading" if fading else "new" if match is None and before == 0 else "steady"
        quote_vectors = feedback.embeddings[idx]
        if story is not None and story.kind == "fading":
            quote_vectors = np.vstack([previous_feedback.embeddings[story.before], quote_vectors])
        themes.append(
            WeeklyTheme(
                theme_id=theme_id,
                week=week,
                size=size,
                previous_size=before,
                centroid=centroid.astype(np.float32),
                keywords=words,
                quotes=representative_quotes(texts, quote_vectors, centroid, rules.quotes, rules.quote_chars,
                                             rules.quote_duplicate_similarity),
                sentiment_mix=dict(Counter(feedback.sentiments[i] for i in idx)),
                issue_mix=dict(Counter(feedback.primary_issues[i] for i in idx)),
                channel_mix=dict(Counter(feedback.channels[i] for i in idx)),
                aspect_mix=aspect_mix(feedback.aspect_sentiments, idx),
                emerging=emerging,
                fading=fading,
                status=status,
                previous_sentiment_mix=(dict(Counter(previous_feedback.sentiments[i] for i in story.before))
                                        if story is not None else {}),
            )
        )
        members.update((feedback.event_ids[i], theme_id) for i in idx)
    themes.sort(key=lambda t: (-t.size, t.theme_id))
    continued = {t.theme_id for t in themes}
    gone = [p for p in previous if p.theme_id not in continued]
    # This week's messages nearest to a theme that did not continue: its volume now.
    now_counts = nearest_counts(feedback.embeddings, [p.centroid for p in gone], rules.member_similarity)
    gone_entries: list[WeeklyTheme] = []
    for p, now in zip(gone, now_counts):
        before = p.size
        fading = not scan and is_fading(int(now), before, scale, rules)
        if not fading and now > 0:
            continue  # still there, inside another theme, without a significant drop: no news
        gone_entries.append(
            WeeklyTheme(
                theme_id=p.theme_id, week=week, size=0, previous_size=before, centroid=p.centroid, keywords=p.keywords,
                quotes=list(p.quotes), sentiment_mix=dict(p.sentiment_mix), issue_mix=dict(p.issue_mix), channel_mix={},
                emerging=False, fading=fading, status="gone", current_estimate=int(now),
            )
        )
    if scan:
        # A fading story with nothing left: listed once, under the id of last week's theme nearest to what faded.
        for story, words in zip(gone_stories, gone_terms):
            centroid = previous_feedback.embeddings[story.before].mean(0).astype(np.float32)
            home = match_previous([centroid], previous, -1.0)[0] if previous else None
            theme_id = previous[home].theme_id if home is not None and previous[home].theme_id not in continued else \
                weekly_theme_id(week, [previous_feedback.event_ids[i] for i in story.before])
            gone_entries = [g for g in gone_entries if g.theme_id != theme_id]
            before_texts = [previous_feedback.texts[i] for i in story.before]
            gone_entries.append(WeeklyTheme(
                theme_id=theme_id, week=week, size=0, previous_size=len(story.before), centroid=centroid, keywords=words,
                quotes=representative_quotes(before_texts, previous_feedback.embeddings[story.before], centroid, rules.quotes,
                                             rules.quote_chars, rules.quote_duplicate_similarity),
                sentiment_mix=dict(Counter(previous_feedback.sentiments[i] for i in story.before)),
                issue_mix=dict(Counter(previous_feedback.primary_issues[i] for i in story.before)), channel_mix={},
                emerging=False, fading=True, status="gone", current_estimate=0,
            ))
        # A theme of last week that did not continue is not listed beside the fading story it belongs to.
        fading_now = [t for t in themes if t.fading] + [g for g in gone_entries if g.fading]
        threshold = rules.story_merge_similarity if rules.story_merge_similarity is not None else rules.continuity_similarity
        gone_entries = [g for g in gone_entries if g.fading or not any(
            float(_unit(g.centroid) @ _unit(f.centroid)) >= threshold for f in fading_now)]
    elif rules.story_merge_similarity is not None:
        gone_entries = merge_gone(gone_entries, [t for t in themes if t.fading], rules.story_merge_similarity)
    themes.extend(gone_entries)
    unclustered = len(feedback) - sum(len(idx) for idx in clusters)
    return WeekResult(week, themes, members, len(feedback), int(unclustered), first_week)
