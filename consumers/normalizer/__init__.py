"""The normalizer stage: raw channel events → clean, redacted feedback."""

from consumers.normalizer.stage import NormalizerStage

__all__ = ["NormalizerStage"]
