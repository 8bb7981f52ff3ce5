"""Wiring the enricher stage from settings: the production model (once per process), store, live themes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path

from consumers.enricher import EnricherStage
from consumers.store.feedback_store import FeedbackStore
from consumers.themes.live import LiveThemes
from topics.settings import Settings


@lru_cache(maxsize=2)
def _load_model(model_dir: Path, quantize: str, max_length: int, num_threads: int | None, max_batch_tokens: int | None,
                registry_dir: Path | None = None):
    from models.feedback_model import FeedbackModel

    return FeedbackModel.load(model_dir, quantize=quantize, max_length=max_length, num_threads=num_threads,
                              max_batch_tokens=max_batch_tokens, registry_dir=registry_dir)


@lru_cache(maxsize=2)
def _load_theme_encoder(model_dir: Path, quantize: str, max_length: int, num_threads: int | None, max_batch_tokens: int | None):
    from models.theme_encoder import ThemeEncoder

    return ThemeEncoder(model_dir, max_length=max_length, quantize=quantize, num_threads=num_threads,
                        max_batch_tokens=max_batch_tokens)


@lru_cache(maxsize=2)
def _with_theme_encoder(model, themes):
    from models.theme_encoder import WithThemeEncoder

    return WithThemeEncoder(model, themes)


def production_model(settings: Settings):
    """The model the enricher uses (the promoted version, else the shipped one); loaded once per process and shared.
    Its predictions' theme embedding comes from the topic encoder (settings ``enrichment.theme_encoder``)."""
    m = settings.model
    model = _load_model(Path(m.dir), m.quantize, m.max_length, m.num_threads, m.max_batch_tokens,
                        Path(settings.promotion.registry_dir))
    t = settings.enrichment.theme_encoder
    return _with_theme_encoder(model, _load_theme_encoder(Path(m.dir), m.quantize, t.max_length, m.num_threads, m.max_batch_tokens))


def build_enricher(settings: Settings, model=None, store: FeedbackStore | None = None) -> EnricherStage:
    store = store or FeedbackStore.from_url(settings.store.url)
    live = settings.enrichment.live
    store.drop_stale_candidates(datetime.now(timezone.utc) - timedelta(days=live.candidate_ttl_days))
    themes = LiveThemes(store.load_themes(), live.threshold_curve, live.promote_at)
    return EnricherStage(
        model or production_model(settings),
        store,
        themes,
        batch_size=settings.model.batch_size,
        max_event_bytes=settings.runtime.max_event_bytes,
    )
