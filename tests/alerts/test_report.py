"""The alerts table of the main job's report."""

from __future__ import annotations

import re

from rich.console import Console

from pipelines.cli.report import _print_alerts
from tests.alerts.helpers import T0
from topics.schemas import Alert, AlertKind, AlertStatus, Priority


def _event(alert_id: str, revision: int, status: AlertStatus, priority: Priority, count: int) -> dict:
    return Alert(
        alert_id=alert_id, revision=revision, priority=priority, kind=AlertKind.spike, key=f"issue_type:{alert_id}",
        status=status, title=f"{alert_id} 反馈量激增", summary="s", reasons=[f"{alert_id} 15 分钟 {count} 条"],
        count=count, total_count=count, first_seen=T0, last_seen=T0,
    ).model_dump(mode="json")


def test_alerts_list_shows_the_latest_revision_of_each_alert_by_priority() -> None:
    console = Console(record=True, width=80)
    _print_alerts(console, [
        _event("logistics", 0, AlertStatus.open, Priority.P2, 11),
        _event("technical", 0, AlertStatus.open, Priority.P1, 3),
        _event("logistics", 1, AlertStatus.resolved, Priority.P2, 2),
    ])
    text = console.export_text()
    assert "feedback.alerts (2 alerts, 3 events)" in text
    # One block per alert, each opening with its priority, as `alerts tail` shows them.
    blocks = re.split(r"\n(?= P\d )", text.split("\n", 1)[1])
    assert [b.split()[0] for b in blocks] == ["P1", "P2"]
    assert "technical 反馈量激增" in blocks[0] and "新告警" in blocks[0]
    assert "logistics 反馈量激增" in blocks[1] and "已恢复" in blocks[1] and "count 2 " in blocks[1] and " r1 " in blocks[1]
    # Times in the local zone (Asia/Shanghai by default): T0 00:00 UTC is 08:00 +08:00.
    assert "2026-11-02 08:00 – 08:00 +08:00" in blocks[0]


def test_a_run_that_met_only_events_of_an_earlier_run_says_so() -> None:
    console = Console(record=True, width=200)
    _print_alerts(console, [], already_processed=31)
    text = " ".join(console.export_text().split())
    assert "feedback.alerts: 31 events were already processed by an earlier run" in text and "no new alerts" in text
    assert "alerts, " not in text  # no empty table


def test_a_run_with_some_repeated_events_lists_its_own_alerts() -> None:
    console = Console(record=True, width=200)
    _print_alerts(console, [_event("technical", 0, AlertStatus.open, Priority.P1, 3)], already_processed=5)
    text = console.export_text()
    assert "5 events were already processed by an earlier run" in text and "no new alerts" not in text
    assert "feedback.alerts (1 alerts, 1 events)" in text
