"""Valid raw events for tests."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any


def raw_event_dict(**overrides: Any) -> dict[str, Any]:
    event = {
        "event_id": "e-1",
        "channel": "app",
        "source": "app-store-connector",
        "received_at": "2026-11-16T09:00:00+08:00",
        "customer": {"id": "c-1"},
        "payload": {"text": "外卖送了一个半小时才到", "rating": 1},
    }
    event.update(overrides)
    return event


def raw_event_bytes(**overrides: Any) -> bytes:
    return json.dumps(raw_event_dict(**overrides), ensure_ascii=False).encode("utf-8")


def numbered_events(n: int, prefix: str = "e", customers: int = 7) -> list[dict[str, Any]]:
    return [
        raw_event_dict(
            event_id=f"{prefix}-{i}",
            customer={"id": f"c-{i % customers}"},
            received_at=datetime(2026, 11, 16, 9, 0, i % 60, tzinfo=timezone.utc).isoformat(),
            payload={"text": f"第{i}条反馈：配送太慢了"},
        )
        for i in range(n)
    ]
