"""Enricher stage: classify, embed and theme normalized feedback."""

from consumers.enricher.stage import EnricherStage

__all__ = ["EnricherStage"]
