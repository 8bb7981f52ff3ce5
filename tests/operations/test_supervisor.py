"""The supervision decisions of ``feedback-miner up`` on a hand-driven clock (no processes)."""

from __future__ import annotations

import pytest

from pipelines.supervisor import Backoff, Supervisor
from topics.settings import UpSettings


def test_backoff_doubles_from_the_initial_delay_up_to_the_cap():
    backoff = Backoff(initial_s=1.0, factor=2.0, max_s=10.0)
    assert [backoff.delay(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert backoff.delay(10_000) == 10.0  # a long crash loop never overflows


def test_backoff_comes_from_the_settings():
    backoff = Backoff.from_settings(UpSettings(restart_backoff_initial_s=0.5, restart_backoff_factor=3, restart_backoff_max_s=9, restart_stable_s=5))
    assert (backoff.delay(1), backoff.delay(2), backoff.delay(3), backoff.stable_s) == (0.5, 1.5, 4.5, 5)


def test_every_child_is_due_at_first_in_the_order_named():
    sup = Supervisor(["broker", "normalizer", "enricher"])
    assert sup.due(0.0) == ["broker", "normalizer", "enricher"]
    sup.started("broker", 100, 0.0)
    assert sup.due(0.0) == ["normalizer", "enricher"]
    assert sup.children["broker"].restarts == 0


def test_a_crash_loop_backs_off_exponentially_and_counts_restarts():
    sup = Supervisor(["enricher"], Backoff(initial_s=1.0, factor=2.0, max_s=60.0, stable_s=30.0))
    now = 0.0
    sup.started("enricher", 1, now)
    delays = []
    for pid in range(2, 6):
        now += 2.0  # crashes two seconds after each start
        exit_ = sup.exited("enricher", -9, now)
        delays.append(exit_.delay_s)
        assert sup.due(now + exit_.delay_s - 0.01) == []
        now += exit_.delay_s
        assert sup.due(now) == ["enricher"]
        sup.started("enricher", pid, now)
    assert delays == [1.0, 2.0, 4.0, 8.0]
    child = sup.children["enricher"]
    assert (child.restarts, child.crashes_in_a_row, child.pid, child.last_exit_code) == (4, 4, 5, -9)


def test_a_child_that_ran_stably_restarts_after_the_initial_delay_again():
    sup = Supervisor(["alerter"], Backoff(initial_s=1.0, factor=2.0, max_s=60.0, stable_s=30.0))
    sup.started("alerter", 1, 0.0)
    assert sup.exited("alerter", 1, 1.0).delay_s == 1.0
    sup.started("alerter", 2, 2.0)
    assert sup.exited("alerter", 1, 3.0).delay_s == 2.0
    sup.started("alerter", 3, 5.0)
    # Ran for an hour: a fresh crash, not the third in a row.
    exit_ = sup.exited("alerter", 0, 3605.0)
    assert (exit_.crashes_in_a_row, exit_.delay_s, exit_.ran_s) == (1, 1.0, 3600.0)


def test_a_failed_start_counts_as_a_crash():
    sup = Supervisor(["broker"], Backoff(initial_s=0.5, factor=2.0, max_s=60.0, stable_s=30.0))
    assert sup.start_failed("broker", 0.0).delay_s == 0.5
    assert sup.start_failed("broker", 0.5).delay_s == 1.0
    assert sup.due(1.49) == [] and sup.due(1.5) == ["broker"]


def test_nothing_restarts_once_stopping():
    sup = Supervisor(["normalizer", "enricher"])
    sup.started("normalizer", 10, 0.0)
    sup.stop()
    exit_ = sup.exited("normalizer", 0, 5.0)
    assert exit_.delay_s is None
    assert sup.due(1e9) == []  # the enricher, never started, is not started either
    assert sup.running() == []


def test_uptime_while_running_and_none_once_exited():
    sup = Supervisor(["normalizer"])
    sup.started("normalizer", 10, 100.0)
    assert sup.children["normalizer"].uptime(130.0) == pytest.approx(30.0)
    sup.exited("normalizer", 0, 140.0)
    assert sup.children["normalizer"].uptime(150.0) is None
