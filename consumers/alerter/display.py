"""Alerts as people read them: times in the configured zone (``alerts.timezone``, default Asia/Shanghai)
with its offset, and the status words."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from topics.schemas import AlertStatus

DEFAULT_TZ = "Asia/Shanghai"
STATUS_ZH = {AlertStatus.open: "新告警", AlertStatus.update: "更新", AlertStatus.resolved: "已恢复"}


@lru_cache(maxsize=8)
def zone(name: str | None) -> ZoneInfo:
    return ZoneInfo(name or DEFAULT_TZ)


def local(ts: datetime | None, tz: str | None = None, seconds: bool = False) -> str:
    """``2026-11-02 14:05 +08:00`` in the given zone."""
    if ts is None:
        return "-"
    at = ts.astimezone(zone(tz))
    offset = at.strftime("%z")
    return at.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M") + f" {offset[:3]}:{offset[3:]}"


def span(first: datetime, last: datetime, tz: str | None = None) -> str:
    """``2026-11-02 14:05 – 14:32 +08:00`` (the date once when both are on the same local day)."""
    a, b = first.astimezone(zone(tz)), last.astimezone(zone(tz))
    offset = b.strftime("%z")
    end = b.strftime("%H:%M") if a.date() == b.date() else b.strftime("%Y-%m-%d %H:%M")
    return f"{a:%Y-%m-%d %H:%M} – {end} {offset[:3]}:{offset[3:]}"


def ack_text(acknowledged_by: str | None, acknowledged_at: datetime | None, note: str | None, tz: str | None = None) -> str | None:
    """``已确认: alice 2026-11-02 14:07 +08:00 · 查看中`` for an acknowledged alert, None otherwise."""
    if not acknowledged_by:
        return None
    at = f" {local(acknowledged_at, tz)}" if acknowledged_at is not None else ""
    return f"已确认: {acknowledged_by}{at}" + (f" · {note}" if note else "")


def state_text(alert, tz: str | None = None) -> str:
    """The alert's state as people read it: its status and whether someone took it (an ``Alert`` event)."""
    acked = ack_text(alert.acknowledged_by, alert.acknowledged_at, alert.ack_note, tz)
    if alert.status == AlertStatus.resolved:
        return STATUS_ZH[alert.status] + (f" ({acked})" if acked else "")
    return f"{STATUS_ZH[alert.status]} · " + (acked or "未确认")
