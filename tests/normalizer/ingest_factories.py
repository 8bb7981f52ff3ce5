"""Settings with ingest tokens and raw event bodies for the HTTP ingest tests."""

from __future__ import annotations

from topics.settings import ChannelSettings, IngestSettings, Settings

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def event(event_id: str = "a", **overrides) -> dict:
    return {
        "event_id": event_id,
        "channel": "app",
        "source": "in-app-feedback",
        "received_at": "2026-11-16T09:00:00+08:00",
        "customer": {"id": "c1"},
        "payload": {"text": "一打开就闪退", "rating": 1},
        **overrides,
    }


def with_ingest(settings: Settings, tokens: list[str] = [TOKEN], **ingest) -> Settings:  # noqa: B006 - never mutated
    return settings.model_copy(update={"channels": ChannelSettings(ingest=IngestSettings(tokens=tokens, **ingest))})
