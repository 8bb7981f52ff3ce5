"""What a digest says, independent of how it is rendered."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from consumers.themes.types import WeeklyTheme


@dataclass
class Digest:
    week: str
    generated_at: datetime
    total: int
    previous_total: int
    unclustered: int
    # Per week (oldest first, this week last): counts by sentiment.
    sentiment_trend: list[tuple[str, Counter]]
    issue_volume: Counter
    previous_issue_volume: Counter
    channel_volume: Counter
    themes: list[WeeklyTheme]  # this week's, by size
    emerging: list[WeeklyTheme]
    fading: list[WeeklyTheme]  # shrunk or gone since last week
    top_n: int = 10
    first_week: bool = False  # no previous week to compare with: nothing is emerging or fading
    notes: list[str] = field(default_factory=list)
    # Theme cards grouped by what their messages mostly say (complaints, praise, mixed); a view only,
    # the clustering never splits by polarity.
    split_by_polarity: bool = False

    @property
    def top_themes(self) -> list[WeeklyTheme]:
        return self.themes[: self.top_n]
