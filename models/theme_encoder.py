"""The topic encoder themes cluster on: the untuned e5-small, int8 ONNX, last-layer mean pool.

The served model's top layers are tuned for sentiment and issue type, so its outputs group
"all praise" and "all product complaints" together; the untuned encoder's last layer groups by
subject (docs/themes.md: purity against source category 0.53 with the free split-layer pool,
≈0.7 with this). It is a second pass over each text, kept cheap: the same int8 ONNX build as
the served model (``models.onnx_int8``, its own graph: no tuned weights, only layer 12 pooled)
and a short ``max_length`` (a theme is named in a message's first sentences; the median review
is 23 tokens).

``WithThemeEncoder`` puts its vectors into the served model's predictions
(``Prediction.theme_embedding``), so the enricher, live themes, weekly themes, calibration
and the benchmark all see one representation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

# The served model reads texts without e5's "query: " prefix; the topic pass reads them the same way.
THEME_PREFIX = ""


class ThemeEncoder:
    """Texts in, L2-normalised 384-d topic vectors out (untuned e5, last layer, mean pool)."""

    def __init__(self, model_dir: Path | None = None, max_length: int = 64, quantize: bool | str = True,
                 num_threads: int | None = None, max_batch_tokens: int | None = None, verify: bool = True) -> None:
        from models.encoder import Encoder

        self.encoder = Encoder(model_dir, max_length=max_length, quantize=quantize, num_threads=num_threads,
                               prefix=THEME_PREFIX, state_dict=None, verify=verify, pool_layers=None,
                               max_batch_tokens=max_batch_tokens)
        self.max_length = max_length
        self.version = f"untuned-e5-L12-{self.encoder.quantized}-len{max_length}"

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        return self.encoder.encode(list(texts), batch_size=batch_size)


class WithThemeEncoder:
    """The served model, its predictions' ``theme_embedding`` from a :class:`ThemeEncoder`.

    Everything else (version, config, encoder, forward …) is the served model's own.
    """

    def __init__(self, model, themes: ThemeEncoder) -> None:
        self.model = model
        self.themes = themes

    def __getattr__(self, name: str):
        return getattr(self.model, name)

    def predict(self, texts: Sequence[str], batch_size: int = 64):
        if isinstance(texts, str):
            raise TypeError("predict() takes a list of texts")
        texts = list(texts)
        predictions = self.model.predict(texts, batch_size=batch_size)
        if not predictions:
            return predictions
        vectors = self.themes.encode(texts, batch_size=batch_size)
        return [replace(p, theme_embedding=v) for p, v in zip(predictions, vectors)]
