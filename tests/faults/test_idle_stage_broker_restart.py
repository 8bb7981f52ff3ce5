"""An idle stage rides out a restart of the embedded broker (memory storage: everything lost).

Nobody publishes after the restart, so no send fails and nothing would tell the stage. Its
consumer never creates topics itself (Tansu would auto-create one with its own partition count,
not the spec's): the runtime sees its input topic gone from the cluster metadata, provisions every
topic as specified, and its consumer rejoins the new broker's group and reads what comes next.
"""

from __future__ import annotations

import logging
import os
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
from topics.admin import admin_client, describe_topics, drift_of, ensure_topics, specs_for
from topics.embedded import EmbeddedBroker
from topics.settings import Settings

pytestmark = pytest.mark.broker

log = logging.getLogger(__name__)


def _topics_as_specified(settings: Settings) -> bool:
    """Every topic exists, with the spec's partitions and configs."""
    try:
        admin = admin_client(settings)
    except Exception:  # noqa: BLE001 - the broker is still starting
        return False
    try:
        specs = specs_for(settings)
        existing = describe_topics(admin, [spec.name for spec in specs])
    finally:
        admin.close()
    return all(spec.name in existing and not drift_of(spec, existing[spec.name]) for spec in specs)


def test_an_idle_stage_provisions_the_topics_again_after_a_broker_restart_and_resumes(
        own_broker: EmbeddedBroker, own_broker_settings: Settings, tmp_path: Path) -> None:
    settings = process_settings(own_broker_settings)
    ensure_topics(settings)
    stage = StageProcess("normalizer", settings, tmp_path / "normalizer.log").start()
    before = Publisher(settings)
    try:
        before.publish(raw_events(200, "idle"))
        wait_until(lambda: all_committed(settings, "normalizer", before), 60, "the first events committed", [stage])
        before.close()

        own_broker.stop()
        own_broker.start()  # same port, nothing on it
        restarted_at = time.monotonic()
        provisioned = wait_until(lambda: _topics_as_specified(settings), 60,
                                 "the idle stage to provision every topic as specified", [stage])

        after = Publisher(settings)
        events = raw_events(300, "idle", start=200) + malformed_raw(4, "idle")
        after.publish(events)
        wait_until(lambda: all_committed(settings, "normalizer", after), 90, "the new events committed", [stage])
        resumed = time.monotonic() - restarted_at
        assert stage.stop() == 0, stage.tail()
    finally:
        stage.stop()
    count = count_normalizer(settings, after)
    after.close()
    log.info("idle stage, broker restarted: topics as specified %.1f s later, new events committed %.1f s after the restart; "
             "%s; load %s", provisioned, resumed, count, os.getloadavg())
    count.check()
    assert count.events_in == len(events) and count.dead_lettered == 4
    assert stage.starts == 1  # the same process throughout
