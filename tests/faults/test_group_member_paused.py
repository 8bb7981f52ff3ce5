"""Two normalizer processes in one group; one is frozen (SIGSTOP) past its session timeout.

The group notices the silent member after ``session_timeout_ms`` and gives its partitions to the
other one, which reads them from the last commit (the frozen member's open batch was never
committed). Resumed (SIGCONT), the frozen member finds it was evicted, drops or fails to commit its
stale batch, rejoins the group without crashing and takes a share of the partitions again.

The store is PostgreSQL, as in a deployment with several members: on the embedded SQLite default a
member frozen inside a write transaction holds the file's single write lock, and the other member's
dedup then degrades to forwarding without recording (by design, so an unavailable store never stops
the stage), which is a store outage and not what this test is about.
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
from topics.settings import Settings

pytestmark = [pytest.mark.broker, pytest.mark.postgres]

log = logging.getLogger(__name__)


def _owned(stage: StageProcess) -> int:
    """How many partitions the process owns after its last logged assignment."""
    assignments = stage.assignments()
    return assignments[-1].count(")") if assignments else 0


def _processed(stage: StageProcess) -> float:
    """Messages the process has processed (-1 while its metrics do not answer)."""
    metrics = stage.metrics()
    return metrics["processed"] if metrics else -1


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
def test_a_member_frozen_past_its_session_rejoins_and_nothing_is_lost(kafka_settings: Settings, store_url: str,
                                                                      tmp_path: Path) -> None:
    on_postgres = kafka_settings.model_copy(update={"store": kafka_settings.store.model_copy(update={"url": store_url})})
    settings = process_settings(on_postgres, batch_size=50, batch_timeout_ms=300)
    session_s = settings.kafka.session_timeout_ms / 1000
    partitions = settings.kafka.default_partitions
    publisher = Publisher(settings)
    events = raw_events(1500, "grp") + malformed_raw(5, "grp")
    frozen = StageProcess("normalizer", settings, tmp_path / "frozen.log").start()
    other = StageProcess("normalizer", settings, tmp_path / "other.log").start()
    members = [frozen, other]
    try:
        wait_until(lambda: _owned(frozen) and _owned(other) and _owned(frozen) + _owned(other) == partitions,
                   60, "both members to share the partitions", members)
        publisher.publish_steadily(events[:1200], per_second=150)
        wait_until(lambda: (m := frozen.metrics()) is not None and m["processed"] > 0 and m["pending"] > 0,
                   60, "the member to be frozen to hold a batch", members)
        frozen.send(signal.SIGSTOP)
        frozen_at = time.monotonic()
        took_over = wait_until(lambda: _owned(other) == partitions, 6 * session_s + 20,
                               "the other member to take every partition", [other])
        time.sleep(max(0.0, frozen_at + 2 * session_s - time.monotonic()))
        frozen_for = time.monotonic() - frozen_at
        rejoins_before = len(frozen.assignments())
        frozen.send(signal.SIGCONT)
        rejoined = wait_until(lambda: len(frozen.assignments()) > rejoins_before and _owned(frozen) > 0,
                              6 * session_s + 30, "the resumed member to rejoin with partitions", members)
        publisher.join()
        processed_at_rejoin = _processed(frozen)
        publisher.publish(events[1200:])  # spread over every partition: some for the rejoined member
        wait_until(lambda: all_committed(settings, "normalizer", publisher), 120, "every event committed", members)
        wait_until(lambda: _processed(frozen) > processed_at_rejoin, 30, "the rejoined member to consume", members)
        for member in members:
            member.check_alive()
        codes = [member.stop() for member in members]
    finally:
        for member in members:
            member.stop()
        publisher.close()
    assert codes == [0, 0], [m.tail() for m in members]
    count = count_normalizer(settings, publisher)
    log.info("member frozen %.1f s (session %.0f s): the other took over in %.1f s, the resumed one rejoined in %.1f s; "
             "%s; load %s", frozen_for, session_s, took_over, rejoined, count, os.getloadavg())
    count.check()
    assert count.events_in == len(events) and count.dead_lettered == 5
