"""Connect to the configured Kafka, or start the embedded broker when none is configured."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from topics.admin import check_broker, ensure_topics
from topics.embedded import EmbeddedBroker
from topics.settings import Settings

log = logging.getLogger(__name__)


@contextmanager
def kafka_session(settings: Settings, provision: bool = True) -> Iterator[Settings]:
    """Yield settings pointing at a live broker; an embedded one lives as long as the block."""
    if settings.kafka.bootstrap_servers:
        check_broker(settings)
        if provision:
            ensure_topics(settings)
        yield settings
        return
    with EmbeddedBroker(log_path=settings.data_dir / "logs" / "embedded-broker.log") as broker:
        log.info("no bootstrap servers configured: embedded broker on %s", broker.bootstrap_servers)
        live = settings.model_copy(update={"kafka": settings.kafka.model_copy(update={"bootstrap_servers": broker.bootstrap_servers})})
        if provision:
            ensure_topics(live)
        yield live
