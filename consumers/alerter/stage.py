"""The alerter stage: enriched feedback in, alert events on ``feedback.alerts`` out.

Pure apart from its injected collaborators: the rule matcher, the state store
(a SQLAlchemy engine) and the clock that stamps ``emitted_at``. Windows run on
event time, so replaying a stream gives the same alerts.

Idempotent by event id: an event already processed (the same batch after a
crash, a copy the enricher re-produced at a new offset, a replay, a second run
of the same file after the broker's offsets restarted from 0) is not counted
again; only its alerts whose publication the runtime never acknowledged
(``on_committed``) are published again, with their original alert id and revision.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from consumers.alerter.engine import AlertEngine
from consumers.alerter.rules import TermMatcher, load_rules
from consumers.alerter.state import AlertStateStore
from consumers.stage import EventStage, InMessage, OutMessage, StageResult, trace_id_of
from consumers.store.feedback_store import enriched_feedback, themes
from consumers.themes.keywords import MAX_TEXTS, KeywordExtractor
from consumers.themes.types import theme_label
from consumers.themes.weeks import previous_week
from topics.schemas import Alert, EnrichedFeedback, utcnow
from topics.settings import AlertSettings
from topics.specs import ALERTS, ENRICHED

log = logging.getLogger(__name__)

AlertSink = Callable[[Alert], None]
# Called with the alert events of a batch once the runtime acknowledged their publication.
PublishedListener = Callable[[list[Alert]], None]


@dataclass
class AlerterStats:
    """What this stage instance did, counted after each committed batch."""

    # Events counted for the first time.
    processed: int = 0
    # Events delivered again after being processed — by this instance or before it started.
    repeated: int = 0
    # Of those, events processed before this instance's first batch (an earlier run or another instance).
    repeated_earlier: int = 0
    # Alert events published again because their earlier publication was never acknowledged.
    republished: int = 0
    # Alert events whose publication the runtime acknowledged.
    published: int = 0


def provisional_label(keywords: KeywordExtractor, texts: Sequence[str], background: Sequence[str],
                      min_texts: int = 3, top: int = 6) -> str | None:
    """A label for a theme the digest has not named yet: its texts' most peculiar terms (c-TF-IDF) against a
    background of other texts, joined as the digest joins them (``theme_label``); None for fewer than
    ``min_texts`` texts or no terms. Pure: texts in, label out."""
    if len(texts) < min_texts:
        return None
    # c-TF-IDF weighs a term by how peculiar it is to one document among several: the theme is one, the
    # background is cut into documents of at most MAX_TEXTS (keywords() reads no more of each).
    documents = [list(texts)] + [list(background[i:i + MAX_TEXTS]) for i in range(0, len(background), MAX_TEXTS)]
    terms = keywords.keywords(documents, top=top)
    return (theme_label(terms[0]) if terms else "") or None


class ThemeLabelLookup:
    """Theme id -> its label from the store's themes table (the weekly digest writes it), cached; None
    when the theme or the table is not there (the title then shows the id).

    A live theme the digest has not named yet (label NULL) gets a provisional label from the keywords of its
    latest ``member_texts`` members (enriched_feedback.theme_id) against up to ``background_texts`` other
    texts of the same and the previous week (``provisional_label``). It is recomputed after RETRY_S (a growing
    theme's label sharpens) and gives way to the stored label as soon as one is there."""

    def __init__(self, store: sa.Engine, keywords: Callable[[], KeywordExtractor] = KeywordExtractor,
                 member_texts: int = 200, background_texts: int = 1000):
        self.store = store
        self.cache: dict[str, str] = {}
        # Themes without a stored label yet: (provisional label or None, when asked); asked again after RETRY_S.
        self.provisional: dict[str, tuple[str | None, float]] = {}
        # Called on first need: loading jieba's dictionaries takes about a second, and labelled themes never need it.
        self._make_keywords = keywords
        self._keywords: KeywordExtractor | None = None
        self.member_texts = member_texts
        self.background_texts = background_texts

    RETRY_S = 300.0

    @property
    def keywords(self) -> KeywordExtractor:
        if self._keywords is None:
            self._keywords = self._make_keywords()
        return self._keywords

    def __call__(self, theme_id: str) -> str | None:
        if theme_id in self.cache:
            return self.cache[theme_id]
        known = self.provisional.get(theme_id)
        if known is not None and time.monotonic() - known[1] < self.RETRY_S:
            return known[0]
        texts: list[str] = []
        background: list[str] = []
        try:
            with self.store.connect() as conn:
                label = conn.execute(sa.select(themes.c.label).where(themes.c.theme_id == theme_id)).scalar_one_or_none()
                if not label:
                    texts, background = self._texts(conn, theme_id)
        except sa.exc.SQLAlchemyError:
            label = None
        if label:
            self.cache[theme_id] = label
            self.provisional.pop(theme_id, None)
            return label
        provisional = None
        if texts:
            try:
                provisional = provisional_label(self.keywords, texts, background)
            except Exception:  # noqa: BLE001 - a name is a courtesy: the title shows the id rather than the alert failing
                log.warning("alerter: no provisional label for theme %s", theme_id, exc_info=True)
        self.provisional[theme_id] = (provisional, time.monotonic())
        return provisional

    def _texts(self, conn: sa.Connection, theme_id: str) -> tuple[list[str], list[str]]:
        """The theme's latest member texts, and other texts of the week of its latest member and the week before."""
        t = enriched_feedback
        rows = conn.execute(sa.select(t.c.text, t.c.week).where(t.c.theme_id == theme_id)
                            .order_by(t.c.received_at.desc()).limit(self.member_texts)).all()
        if not rows:
            return [], []
        weeks = [rows[0].week, previous_week(rows[0].week)]
        background = conn.execute(
            sa.select(t.c.text).where(t.c.week.in_(weeks), sa.or_(t.c.theme_id.is_(None), t.c.theme_id != theme_id))
            .order_by(t.c.received_at.desc()).limit(self.background_texts)).scalars().all()
        return [r.text for r in rows], list(background)


class AlerterStage(EventStage[EnrichedFeedback]):
    name = "alerter"
    input_topic = ENRICHED
    output_topics = (ALERTS,)
    input_model = EnrichedFeedback

    def __init__(
        self,
        settings: AlertSettings,
        store: sa.Engine,
        matcher: TermMatcher | None = None,
        clock: Callable[[], datetime] = utcnow,
        sinks: list[AlertSink] | None = None,
        max_event_bytes: int | None = None,
        theme_labels: ThemeLabelLookup | None = None,
    ):
        self.settings = settings
        self.matcher = matcher or TermMatcher(load_rules(settings.rules_path))
        self.engine = AlertEngine.build(self.matcher, settings, clock)
        self.engine.theme_label = theme_labels or ThemeLabelLookup(store)
        self.state = AlertStateStore(store, clock)
        # Called with every new alert after its state is committed (webhooks); must not block.
        self.sinks = sinks or []
        self.published_listeners: list[PublishedListener] = []
        self.max_event_bytes = max_event_bytes
        self.stats = AlerterStats()

    def handle(self, events: list[tuple[InMessage, EnrichedFeedback]]) -> StageResult:
        result = StageResult()
        fresh: list[Alert] = []
        repeated = repeated_earlier = republished = 0
        # A batch mixes partitions; in event-time order their events meet the windows as they happened.
        ordered = sorted(events, key=lambda item: item[1].received_at)
        warm = (self.settings.baseline_min, self.settings.warm_start_gap_min) if self.settings.warm_start_from_store else None
        first = ordered[0][1].received_at if ordered else None
        with self.state.batch(self.engine, {event.event_id for _, event in events}, first, warm) as batch:
            for message, event in ordered:
                if batch.already_processed(event.event_id):
                    # Delivered again: the state already counted it. Publish what it caused
                    # only where that publication was never acknowledged.
                    repeated += 1
                    first = self.state.first_version
                    if event.event_id in batch.known and (first is None or batch.known[event.event_id] < first):
                        repeated_earlier += 1
                    for alert in batch.unpublished_alerts(event.event_id):
                        republished += 1
                        result.outputs.append(self._out(alert, message))
                    continue
                for alert in self.engine.process(event):
                    batch.log(alert, message, event.event_id)
                    fresh.append(alert)
                    result.outputs.append(self._out(alert, message))
                batch.done(event.event_id, event.received_at)
            processed = len(batch.processed)
        self.stats.processed += processed
        self.stats.repeated += repeated
        self.stats.repeated_earlier += repeated_earlier
        self.stats.republished += republished
        if repeated:
            log.info("alerter: %d of %d events were already processed (not counted again), %d unacknowledged alert events published again",
                     repeated, len(events), republished)
        for alert in fresh:
            for sink in self.sinks:
                sink(alert)
        return result

    def on_committed(self, result: StageResult) -> None:
        """The runtime acknowledged every output of ``result``: mark those alert events published,
        so a later delivery of their events does not publish them again."""
        alerts = [out.event for out in result.outputs if isinstance(out.event, Alert)]
        if not alerts:
            return
        try:
            self.state.mark_published(alerts)
        except Exception:  # noqa: BLE001 - offsets are committed; the worst case is one more publication later
            log.warning("alerter: could not mark %d alert events published; a redelivery would publish them again",
                        len(alerts), exc_info=True)
        self.stats.published += len(alerts)
        for listener in self.published_listeners:
            listener(alerts)

    def _out(self, alert: Alert, message: InMessage) -> OutMessage:
        return OutMessage(ALERTS, alert, alert.partition_key(), trace_id_of(message))
