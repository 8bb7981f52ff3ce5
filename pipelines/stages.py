"""The stream stages by name, in pipeline order, built from settings."""

from __future__ import annotations

from collections.abc import Callable

from consumers.normalizer import NormalizerStage
from consumers.stage import Stage
from topics.settings import Settings


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
    from consumers.alerter.stage import AlerterStage, ThemeLabelLookup
    from consumers.alerter.webhooks import WebhookDispatcher
    from consumers.store import make_engine, migrate
    from consumers.themes.keywords import KeywordExtractor

    engine = make_engine(settings.store.url)
    migrate(engine)
    sinks = [WebhookDispatcher.from_settings(settings.alerts)] if settings.alerts.webhooks else []
    # Live themes the digest has not named yet are named with the digest's own dictionaries.
    weekly = settings.enrichment.weekly
    labels = ThemeLabelLookup(engine, KeywordExtractor(weekly.user_dict, weekly.stop_words))
    return AlerterStage(settings.alerts, engine, sinks=sinks, max_event_bytes=settings.runtime.max_event_bytes,
                        theme_labels=labels)


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
