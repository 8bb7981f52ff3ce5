"""The broker process frozen (SIGSTOP) past the group session timeout, then resumed.

While it is frozen every request of the stage times out: the stage pauses and keeps its batch.
Resumed, the broker finds the member's session expired; the stage rejoins, reads again from the
last commit and carries on by itself, with nobody restarting it.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

import pytest

from tests.faults.processes import (
    Publisher,
    StageProcess,
    all_committed,
    count_normalizer,
    malformed_raw,
    process_settings,
    wait_until,
)
from tests.faults.streams import raw_events
from topics.admin import ensure_topics
from topics.embedded import EmbeddedBroker
from topics.settings import Settings

pytestmark = pytest.mark.broker

log = logging.getLogger(__name__)


def test_a_stage_recovers_by_itself_after_the_broker_was_frozen(own_broker: EmbeddedBroker, own_broker_settings: Settings,
                                                                  tmp_path: Path) -> None:
    settings = process_settings(own_broker_settings, batch_size=50, batch_timeout_ms=300)
    session_s = settings.kafka.session_timeout_ms / 1000
    ensure_topics(settings)
    events = raw_events(1600, "frz") + malformed_raw(8, "frz")
    publisher = Publisher(settings)
    stage = StageProcess("normalizer", settings, tmp_path / "normalizer.log").start()
    try:
        wait_until(lambda: stage.assignments() and stage.assignments()[-1], 60, "the stage to join its group", [stage])
        publisher.publish(events[:800])
        wait_until(lambda: (m := stage.metrics()) is not None and m["processed"] > 0 and m["pending"] > 0,
                   60, "a batch in flight", [stage])
        os.kill(own_broker.pid, signal.SIGSTOP)
        frozen_at = time.monotonic()
        try:
            while time.monotonic() - frozen_at < 2 * session_s + 2:
                stage.check_alive()
                time.sleep(0.1)
        finally:
            os.kill(own_broker.pid, signal.SIGCONT)
        frozen_for = time.monotonic() - frozen_at
        publisher.publish(events[800:])
        caught_up = wait_until(lambda: all_committed(settings, "normalizer", publisher), 120, "every event committed", [stage])
        assert stage.stop() == 0, stage.tail()
    finally:
        stage.stop()
        publisher.close()
    count = count_normalizer(settings, publisher)
    log.info("broker frozen %.1f s (session %.0f s): every event committed %.1f s after it resumed; %s; load %s",
             frozen_for, session_s, caught_up, count, os.getloadavg())
    count.check()
    assert count.events_in == len(events) and count.dead_lettered == 8
    assert stage.starts == 1  # nobody restarted it
