"""ISO weeks ("2026-W47") in UTC: the unit of the weekly digest."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


def iso_week(moment: datetime) -> str:
    """The ISO week of ``moment`` (aware datetimes are converted to UTC first)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    year, week, _ = moment.isocalendar()
    return f"{year}-W{week:02d}"


def parse_week(week: str) -> tuple[int, int]:
    match = _WEEK.match(week)
    if not match:
        raise ValueError(f"not an ISO week like 2026-W47: {week!r}")
    year, number = int(match.group(1)), int(match.group(2))
    try:
        date.fromisocalendar(year, number, 1)
    except ValueError:
        raise ValueError(f"{year} has no ISO week {number}") from None
    return year, number


def week_start(week: str) -> datetime:
    """Monday 00:00 UTC of ``week``."""
    year, number = parse_week(week)
    return datetime.combine(date.fromisocalendar(year, number, 1), datetime.min.time(), tzinfo=timezone.utc)


def shift_week(week: str, weeks: int) -> str:
    return iso_week(week_start(week) + timedelta(weeks=weeks))


def previous_week(week: str) -> str:
    return shift_week(week, -1)
