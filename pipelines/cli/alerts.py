"""``feedback-miner alerts …``: the live tail of the alert topic."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.text import Text

from pipelines.cli.common import cli_errors, console, require_broker, settings
from topics.schemas import Alert, AlertStatus, Channel, IssueType, Priority

alerts_app = typer.Typer(help="Watch the priority alerts on feedback.alerts.", no_args_is_help=True)

PRIORITY_STYLE = {Priority.P1: "bold white on red", Priority.P2: "bold red", Priority.P3: "yellow", Priority.P4: "dim"}
STATUS_STYLE = {AlertStatus.open: "bold", AlertStatus.update: "cyan", AlertStatus.resolved: "green"}


def matches(
    alert: Alert,
    priorities: list[Priority] | None = None,
    issue_types: list[IssueType] | None = None,
    channels: list[Channel] | None = None,
) -> bool:
    """The tail's filters: each given list must contain the alert's value."""
    if priorities and alert.priority not in priorities:
        return False
    if issue_types and alert.issue_type not in issue_types:
        return False
    if channels and alert.channel not in channels:
        return False
    return True


def render_alert(alert: Alert) -> Text:
    """One alert as a few coloured lines."""
    text = Text()
    text.append(f" {alert.priority.value} ", style=PRIORITY_STYLE[alert.priority])
    text.append(f" {alert.status.value:<8}", style=STATUS_STYLE[alert.status])
    text.append(f" {alert.kind.value:<14} {alert.key}  ", style="dim")
    text.append(alert.title, style="bold")
    text.append(f"\n    {alert.summary}")
    counts = f"count {alert.count}" + (f" · baseline {alert.baseline:.2f}" if alert.baseline is not None else "")
    text.append(f"\n    {counts} · total {alert.total_count} · {alert.last_seen:%Y-%m-%d %H:%M:%S%z} · {alert.alert_id} r{alert.revision}", style="dim")
    for reason in alert.reasons[:5]:
        text.append(f"\n    • {reason}")
    for sample in alert.samples[:3]:
        text.append(f"\n    “{sample.quote}” ({sample.channel.value}, {sample.event_id})", style="italic")
    return text


@alerts_app.command("tail")
@cli_errors
def tail(
    priority: Annotated[Optional[list[Priority]], typer.Option("--priority", "-p", help="Only these priorities (repeatable).")] = None,
    issue_type: Annotated[Optional[list[IssueType]], typer.Option("--issue-type", "-i", help="Only these issue types (repeatable).")] = None,
    channel: Annotated[Optional[list[Channel]], typer.Option("--channel", "-c", help="Only these channels (repeatable).")] = None,
    from_beginning: Annotated[bool, typer.Option(help="Start at the oldest alert instead of new ones.")] = False,
    max_alerts: Annotated[Optional[int], typer.Option("--max", help="Stop after printing this many alerts.")] = None,
    timeout: Annotated[Optional[float], typer.Option(help="Stop after this many seconds without alerts.")] = None,
    raw: Annotated[bool, typer.Option(help="Print one JSON object per line (for scripts).")] = False,
) -> None:
    """Follow feedback.alerts live, coloured by priority."""
    from consumers.kafka_io import follow_topic
    from topics.serde import DecodeError, decode
    from topics.specs import ALERTS

    s = settings()
    require_broker(s, "alerts tail")
    out = Console(highlight=False) if not raw else None
    records = follow_topic(s, ALERTS, from_beginning, timeout)
    shown = 0
    try:
        for record in records:
            try:
                alert = decode(Alert, record.value, list(record.headers or []))
            except DecodeError as exc:
                console.print(f"[yellow]skipping undecodable record at offset {record.offset}: {exc}[/]")
                continue
            if not matches(alert, priority, issue_type, channel):
                continue
            if raw:
                print(alert.model_dump_json(), flush=True)
            else:
                out.print(render_alert(alert))
            shown += 1
            if max_alerts is not None and shown >= max_alerts:
                break
    except KeyboardInterrupt:
        pass
    finally:
        records.close()
