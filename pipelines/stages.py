"""The stream stages by name, in pipeline order, built from settings."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from consumers.normalizer import NormalizerStage
from consumers.stage import Stage
from topics.settings import Settings

if TYPE_CHECKING:
    from consumers.alerter.stage import ThemeLabelLookup


def _normalizer(settings: Settings) -> Stage:
    from consumers.store import make_engine, migrate
    from consumers.store.dedup_index import SqlDedupIndex

    index = None
    if settings.channels.dedup.enabled:
        engine = make_engine(settings.store.url)
        migrate(engine)
        index = SqlDedupIndex(engine, settings.channels.dedup)
    return NormalizerStage(max_event_bytes=settings.runtime.max_event_bytes, settings=settings.channels, dedup_index=index)


def _enricher(settings: Settings) -> Stage:
    from pipelines.enrichment import build_enricher

    return build_enricher(settings)


def _alerter(settings: Settings) -> Stage:
    from consumers.alerter.stage import AlerterStage
    from consumers.alerter.webhooks import WebhookDispatcher
    from consumers.store import make_engine, migrate

    engine = make_engine(settings.store.url)
    migrate(engine)
    sinks = [WebhookDispatcher.from_settings(settings.alerts)] if settings.alerts.webhooks else []
    return AlerterStage(settings.alerts, engine, sinks=sinks, max_event_bytes=settings.runtime.max_event_bytes,
                        theme_labels=theme_label_lookup(settings, engine))


def theme_label_lookup(settings: Settings, engine) -> ThemeLabelLookup:
    """Theme names for people: the digest's label, else (a live theme it has not named yet) its members'
    keywords, found with the digest's own dictionaries."""
    from functools import partial

    from consumers.alerter.stage import ThemeLabelLookup
    from consumers.themes.keywords import KeywordExtractor

    weekly = settings.enrichment.weekly
    return ThemeLabelLookup(engine, partial(KeywordExtractor, weekly.user_dict, weekly.stop_words))


# Pipeline order matters: the main job waits for each stage to drain what the previous one produced.
STAGES: dict[str, Callable[[Settings], Stage]] = {
    "normalizer": _normalizer,
    "enricher": _enricher,
    "alerter": _alerter,
}


def build_stage(name: str, settings: Settings) -> Stage:
    try:
        factory = STAGES[name]
    except KeyError:
        raise ValueError(f"unknown stage {name!r}; known: {', '.join(STAGES)}") from None
    return factory(settings)
