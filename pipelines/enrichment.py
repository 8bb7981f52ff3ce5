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
                registry_dir: Path | None = None, topic_max_tokens: int | None = None,
                topic_skip_layers: tuple[int, ...] = (), onnx_builds_kept: int | None = None):
    from models.feedback_model import FeedbackModel

    return FeedbackModel.load(model_dir, quantize=quantize, max_length=max_length, num_threads=num_threads,
                              max_batch_tokens=max_batch_tokens, registry_dir=registry_dir,
                              topic_max_tokens=topic_max_tokens, topic_skip_layers=topic_skip_layers,
                              onnx_builds_kept=onnx_builds_kept)


def production_model(settings: Settings, with_topic_branch: bool = True):
    """The model the enricher uses (the promoted version, else the shipped one); loaded once per process and shared.
    Its predictions' theme embedding comes from the topic branch (models/topic_branch.py; settings
    ``enrichment.theme_encoder``); ``with_topic_branch=False`` is the model without it (benchmarks measure its cost)."""
    m = settings.model
    branch = settings.enrichment.theme_encoder
    return _load_model(Path(m.dir), m.quantize, m.max_length, m.num_threads, m.max_batch_tokens,
                       Path(settings.promotion.registry_dir), branch.max_length if with_topic_branch else None,
                       tuple(branch.skip_layers),  # no token count, no branch: its layers are then ignored
                       m.onnx_builds_kept)


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
