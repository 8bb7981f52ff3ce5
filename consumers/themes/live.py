"""Live theme assignment: nearest centroid above a calibrated, size-dependent threshold.

A message joins the most similar theme whose threshold it passes (the
threshold depends on the theme's size, see calibration.py); otherwise it
starts a new candidate theme, which becomes active once it has
``promote_at`` members. Centroids are running means, updated exactly.

``assign`` works on a copy and ``commit`` adopts it, so a batch that fails
later (the store write) never moves a centroid twice when it is retried.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone

import numpy as np

from consumers.themes.types import Theme


def new_theme_id() -> str:
    return f"th-{uuid.uuid4().hex[:12]}"


def _unit(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.maximum(np.linalg.norm(matrix, axis=-1, keepdims=True), 1e-12)


@dataclass
class Assignment:
    theme_ids: list[str]
    # Themes created or changed by this batch, in their new state.
    changed: list[Theme]
    _ids: list[str]
    _means: np.ndarray
    _sizes: np.ndarray
    _by_id: dict[str, Theme]


class LiveThemes:
    def __init__(
        self,
        themes: Sequence[Theme],
        threshold_curve: Sequence[tuple[int, float]],
        promote_at: int = 3,
        id_factory: Callable[[], str] = new_theme_id,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
        dim: int | None = None,
    ):
        if not threshold_curve:
            raise ValueError("threshold_curve needs at least one (size, threshold) point")
        curve = sorted(threshold_curve)
        self._log_k = np.log([max(1, k) for k, _ in curve])
        self._t = np.array([t for _, t in curve], dtype=np.float64)
        self.promote_at = promote_at
        self._new_id = id_factory
        self._clock = clock
        self._by_id = {t.theme_id: t for t in themes}
        self._ids = [t.theme_id for t in themes]
        d = dim or (len(themes[0].centroid) if themes else 0)
        self._means = np.array([t.centroid for t in themes], dtype=np.float32).reshape(len(themes), d)
        self._sizes = np.array([t.size for t in themes], dtype=np.int64)

    def __len__(self) -> int:
        return len(self._ids)

    def themes(self) -> list[Theme]:
        return [self._by_id[i] for i in self._ids]

    def thresholds(self, sizes: np.ndarray) -> np.ndarray:
        return np.interp(np.log(np.maximum(sizes, 1)), self._log_k, self._t)

    def assign(self, embeddings: np.ndarray) -> Assignment:
        """Pick a theme for each (L2-normalised) row, on a working copy of the state."""
        emb = np.asarray(embeddings, dtype=np.float32)
        if emb.ndim != 2 or (len(self._ids) and emb.shape[1] != self._means.shape[1]):
            raise ValueError(f"embeddings of shape {emb.shape} do not fit themes of dimension {self._means.shape[1:]}")
        ids = list(self._ids)
        means = np.array(self._means, dtype=np.float32).reshape(len(ids), emb.shape[1])
        sizes = self._sizes.copy()
        by_id = dict(self._by_id)
        changed: dict[str, Theme] = {}
        chosen: list[str] = []
        now = self._clock()
        for x in emb:
            best = -1
            if ids:
                sims = _unit(means) @ x
                ok = sims >= self.thresholds(sizes)
                if ok.any():
                    best = int(np.argmax(np.where(ok, sims, -np.inf)))
            if best < 0:
                theme_id = self._new_id()
                ids.append(theme_id)
                means = np.vstack([means, x[None, :]])
                sizes = np.append(sizes, 1)
                theme = Theme(theme_id, means[-1].copy(), 1, "active" if self.promote_at <= 1 else "candidate", created_at=now, updated_at=now)
            else:
                theme_id = ids[best]
                sizes[best] += 1
                means[best] += (x - means[best]) / sizes[best]  # running mean: exact incremental update
                old = by_id[theme_id]
                status = "active" if sizes[best] >= self.promote_at else old.status
                theme = replace(old, centroid=means[best].copy(), size=int(sizes[best]), status=status, updated_at=now)
            by_id[theme_id] = changed[theme_id] = theme
            chosen.append(theme_id)
        return Assignment(chosen, list(changed.values()), ids, means, sizes, by_id)

    def commit(self, assignment: Assignment) -> None:
        """Adopt the state an ``assign`` produced (after it was stored)."""
        self._ids, self._means, self._sizes, self._by_id = assignment._ids, assignment._means, assignment._sizes, assignment._by_id
