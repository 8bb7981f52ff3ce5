"""Building one week's digest: store → weekly themes → snapshot → HTML + Markdown → announcement.

Collaborators (store, clusterer, keyword extractor, announcer, clock) are
injected; ``run_digest`` wires the defaults from settings.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path

from consumers.store.feedback_store import FeedbackStore
from consumers.themes.clustering import AgglomerativeClusterer, Clusterer
from consumers.themes.keywords import KeywordExtractor
from consumers.themes.weekly import WeeklyRules, WeekResult, build_week
from consumers.themes.weeks import parse_week, previous_week, shift_week
from pipelines.digest.model import Digest
from pipelines.digest.render import render_html, render_markdown
from topics.schemas import DigestAnnouncement, DigestTheme
from topics.settings import Settings, WeeklyThemeSettings

log = logging.getLogger(__name__)

Announcer = Callable[[DigestAnnouncement], None]


def make_clusterer(weekly: WeeklyThemeSettings) -> Clusterer:
    return AgglomerativeClusterer(weekly.merge_similarity, weekly.micro_clusters, weekly.min_theme_size, weekly.seed)


def weekly_rules(weekly: WeeklyThemeSettings) -> WeeklyRules:
    """The rules from the settings: every field they share by name, so a new setting cannot be left out."""
    shared = {f.name for f in fields(WeeklyRules)} & set(WeeklyThemeSettings.model_fields)
    return WeeklyRules(**{name: getattr(weekly, name) for name in shared}, story_coherence=weekly.merge_similarity)


def cluster_week(store: FeedbackStore, week: str, clusterer: Clusterer, keywords: KeywordExtractor, rules: WeeklyRules) -> WeekResult:
    """Cluster ``week`` against last week's snapshot and store the new snapshot (replacing a previous run)."""
    parse_week(week)
    last = previous_week(week)
    result = build_week(week, store.week_feedback(week), store.load_week(last), clusterer, keywords, rules, store.week_feedback(last))
    store.save_week(week, result.themes, result.members)
    return result


def assemble_digest(store: FeedbackStore, result: WeekResult, top_n: int, now: datetime, trend_weeks: int = 6) -> Digest:
    week = result.week
    weeks = [shift_week(week, -k) for k in range(trend_weeks - 1, -1, -1)]
    counts = store.week_counts(weeks)
    last = counts[weeks[-2]] if len(weeks) > 1 else {"sentiment": Counter(), "issue": Counter()}
    current = [t for t in result.themes if t.size > 0]
    return Digest(
        week=week,
        generated_at=now,
        total=result.total,
        previous_total=sum(last["sentiment"].values()),
        unclustered=result.unclustered,
        sentiment_trend=[(w, counts[w]["sentiment"]) for w in weeks],
        issue_volume=counts[week]["issue"],
        previous_issue_volume=last["issue"],
        channel_volume=counts[week]["channel"],
        themes=current,
        emerging=[t for t in current if t.emerging],
        fading=[t for t in result.themes if t.fading],
        top_n=top_n,
        # The renderers say what a first week means, once (render.FIRST_WEEK_NOTE): no note of it here.
        first_week=result.first_week,
    )


def write_digest(digest: Digest, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    html_path = out_dir / f"digest-{digest.week}.html"
    md_path = out_dir / f"digest-{digest.week}.md"
    html_path.write_text(render_html(digest), encoding="utf-8")
    md_path.write_text(render_markdown(digest), encoding="utf-8")
    return html_path, md_path


def announcement(digest: Digest, html_path: Path, md_path: Path) -> DigestAnnouncement:
    def brief(t) -> DigestTheme:
        return DigestTheme(theme_id=t.theme_id, label=t.label, size=t.size, previous_size=t.previous_size, status=t.status)

    return DigestAnnouncement(
        week=digest.week,
        html_path=str(html_path),
        markdown_path=str(md_path),
        feedback_count=digest.total,
        theme_count=len(digest.themes),
        top_themes=[brief(t) for t in digest.top_themes],
        emerging_themes=[brief(t) for t in digest.emerging],
        generated_at=digest.generated_at,
    )


def kafka_announcer(settings: Settings) -> Announcer:
    """Publish announcements on ``feedback.digests`` (acks=all), one producer per call."""
    from consumers.kafka_io import make_producer, send_event
    from consumers.stage import OutMessage
    from topics.specs import DIGESTS

    def announce(event: DigestAnnouncement) -> None:
        producer = make_producer(settings)
        try:
            send_event(producer, settings, OutMessage(DIGESTS, event, event.key())).get(timeout=settings.kafka.request_timeout_ms / 1000)
        finally:
            producer.close()

    return announce


@dataclass
class DigestOutcome:
    digest: Digest
    html_path: Path
    markdown_path: Path
    announcement: DigestAnnouncement
    announced: bool


def digest_dir(settings: Settings) -> Path:
    return settings.enrichment.digest_dir or settings.data_dir / "digests"


def run_digest(
    settings: Settings,
    week: str,
    store: FeedbackStore | None = None,
    clusterer: Clusterer | None = None,
    keywords: KeywordExtractor | None = None,
    announce: Announcer | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
) -> DigestOutcome:
    weekly = settings.enrichment.weekly
    own_store = store is None
    store = store or FeedbackStore.from_url(settings.store.url)
    try:
        result = cluster_week(
            store,
            week,
            clusterer or make_clusterer(weekly),
            keywords or KeywordExtractor(weekly.user_dict, weekly.stop_words),
            weekly_rules(weekly),
        )
        digest = assemble_digest(store, result, weekly.top_themes, clock())
        digest.split_by_polarity = weekly.digest_split_by_polarity
    finally:
        if own_store:
            store.close()
    html_path, md_path = write_digest(digest, digest_dir(settings))
    event = announcement(digest, html_path, md_path)
    if announce is not None:
        announce(event)
    log.info("digest %s: %d messages, %d themes, %d emerging → %s", week, digest.total, len(digest.themes), len(digest.emerging), html_path)
    return DigestOutcome(digest, html_path, md_path, event, announce is not None)


def digests_for_events(settings: Settings, event_ids: list[str], announce: Announcer | None = None) -> list[DigestOutcome]:
    """A digest for every week the given events were stored in, oldest first (so continuity runs forward)."""
    store = FeedbackStore.from_url(settings.store.url)
    try:
        return [run_digest(settings, week, store=store, announce=announce) for week in store.weeks_of(event_ids)]
    finally:
        store.close()
