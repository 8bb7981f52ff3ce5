"""App store reviews and in-app feedback: the text, with rating, version, OS and device as signals.

Signals are copied as sent; ``pipeline.normalize`` redacts every string in them (a device
named "张三的手机 138…" loses the number) before anything leaves the raw topic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from topics.schemas import AppPayload


@dataclass
class AppContent:
    text: str
    flags: list[str] = field(default_factory=list)
    signals: dict[str, object] = field(default_factory=dict)


def parse_app(payload: AppPayload) -> AppContent:
    signals: dict[str, object] = {}
    for name in ("rating", "app_version", "os", "device", "store"):
        value = getattr(payload, name)
        if value is not None:
            signals[name] = value.strip() if isinstance(value, str) else value
    flags = []
    if payload.rating is not None and payload.rating <= 2:
        flags.append("low_rating")
    return AppContent(payload.text, flags, signals)
