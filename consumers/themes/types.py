"""Plain data shared by live themes, weekly clustering, the store and the digest."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np


@dataclass
class Theme:
    """A live theme: the running mean of its members' embeddings (kept un-normalised for exact updates)."""

    theme_id: str
    centroid: np.ndarray  # float32 member mean; compare by its direction
    size: int
    status: str = "candidate"  # candidate | active
    label: str | None = None
    keywords: list[str] = field(default_factory=list)
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass
class WeekFeedback:
    """One week of enriched feedback, column-wise, as clustering wants it."""

    event_ids: list[str]
    embeddings: np.ndarray  # (n, d) float32, L2-normalised
    texts: list[str]
    channels: list[str]
    primary_issues: list[str]
    sentiments: list[str]
    sentiment_scores: list[float]
    live_theme_ids: list[str | None]
    # {issue type: sentiment} per message (empty where the model gave none).
    aspect_sentiments: list[dict[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.event_ids)


@dataclass
class WeeklyTheme:
    """One theme of one week, as the digest reports it and the store keeps it."""

    theme_id: str
    week: str
    size: int
    previous_size: int
    centroid: np.ndarray
    keywords: list[str]
    quotes: list[str]
    sentiment_mix: dict[str, int]
    issue_mix: dict[str, int]
    channel_mix: dict[str, int]
    emerging: bool = False
    fading: bool = False
    status: str = "steady"  # first_week | new | emerging | steady | fading | gone
    # A gone theme: this week's messages nearest to its centroid (its volume now; not stored).
    current_estimate: int = 0
    # Per issue type, how its members felt about that aspect: {issue type: {sentiment: count}} (not stored).
    aspect_mix: dict[str, dict[str, int]] = field(default_factory=dict)
    # A flagged story's messages last week by sentiment (what grew or faded from; not stored).
    previous_sentiment_mix: dict[str, int] = field(default_factory=dict)

    @property
    def growth(self) -> float | None:
        """This week's size over last week's; None for a theme new this week."""
        return self.size / self.previous_size if self.previous_size else None

    @property
    def label(self) -> str:
        return theme_label(self.keywords) or self.theme_id


def theme_label(keywords: list[str], min_chars: int = 4, max_terms: int = 3) -> str:
    """A label a person reads: the theme's best term (often a phrase: 支付页面打不开), followed by the next
    ones only while it is shorter than ``min_chars`` characters (电池、待机时间), joined the Chinese way."""
    chosen: list[str] = []
    for word in keywords[:max_terms]:
        chosen.append(word)
        if sum(len(w) for w in chosen) >= min_chars:
            break
    return "、".join(chosen)
