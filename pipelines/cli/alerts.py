"""``feedback-miner alerts …``: the live tail of the alert topic, the open alerts, acknowledge and resolve."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.text import Text

from pipelines.cli.common import cli_errors, console, require_broker, settings
from topics.schemas import Alert, AlertKind, AlertStatus, Channel, IssueType, Priority

alerts_app = typer.Typer(help="Watch, list, acknowledge and resolve the priority alerts (feedback.alerts).", no_args_is_help=True)

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


def render_alert(alert: Alert, tz: str | None = None) -> Text:
    """One alert as a few coloured lines; times in the configured zone (default Asia/Shanghai)."""
    from consumers.alerter.display import STATUS_ZH, ack_text, local, span

    text = Text()
    text.append(f" {alert.priority.value} ", style=PRIORITY_STYLE[alert.priority])
    text.append(f" {STATUS_ZH[alert.status]} ", style=STATUS_STYLE[alert.status])
    text.append(alert.title, style="bold")
    acked = ack_text(alert.acknowledged_by, alert.acknowledged_at, alert.ack_note, tz)
    # Events written before the acknowledgement fields existed carry it only as a reason line.
    acked_reason = next((r for r in alert.reasons if r.startswith("已确认")), None)
    acked = acked or acked_reason
    text.append(f"  [{acked}]" if acked else ("  [未确认]" if alert.status != AlertStatus.resolved else ""),
                style="green" if acked else "yellow")
    text.append(f"\n    {alert.summary}")
    text.append(f"\n    {span(alert.first_seen, alert.last_seen, tz)}  (首次 – 最近, 事件时间)", style="bold dim")
    counts = f"count {alert.count}" + (f" · baseline {alert.baseline:.1f}" if alert.baseline is not None and alert.kind != AlertKind.message else "")
    text.append(f"\n    {counts} · total {alert.total_count} · {alert.kind.value} {alert.key}", style="dim")
    # The id on a line of its own: it is what `alerts ack` takes, and an 80-column terminal broke it off mid-line.
    text.append(f"\n    id {alert.alert_id} r{alert.revision} · sent {local(alert.emitted_at, tz, seconds=True)}", style="dim")
    for reason in alert.reasons[:6]:
        if reason not in (acked_reason, alert.summary):  # a spike's first reason is its summary line
            text.append(f"\n    • {reason}")
    for sample in alert.samples[:3]:
        text.append(f"\n    “{sample.quote}” ({sample.channel.value}, {local(sample.received_at, tz)[11:16]})", style="italic")
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
                out.print(render_alert(alert, s.alerts.timezone))
            shown += 1
            if max_alerts is not None and shown >= max_alerts:
                break
    except KeyboardInterrupt:
        pass
    finally:
        records.close()


def _store():
    from consumers.store import make_engine, migrate

    engine = make_engine(settings().store.url)
    migrate(engine)
    return engine


@alerts_app.command("list")
@cli_errors
def list_alerts(
    open_only: Annotated[bool, typer.Option("--open/--all", help="Only open alerts (default), or also those resolved within the cool-down.")] = True,
    raw: Annotated[bool, typer.Option(help="One JSON object per line.")] = False,
) -> None:
    """The alerts the alerter keeps in the store, most urgent first, then the pipeline_health flow's open ones."""
    import json

    from consumers.alerter.display import ack_text, local, span
    from consumers.alerter.state import alert_states
    from pipelines.pipeline_probe import load_memory

    s = settings()
    store = _store()
    states = alert_states(store, open_only)
    # The pipeline_health flow's open alerts (kept in its memory, not in the alerter's tables).
    health = load_memory(store).open_alerts
    if raw:
        for st in states:
            print(json.dumps(st.to_json(), ensure_ascii=False))
        for key, opened in health.items():
            print(json.dumps({"kind": "health", "key": key, "open": True, **_health_json(opened)}, ensure_ascii=False))
        return
    if not states and not health:
        console.print("no open alerts" if open_only else "no alerts")
        return
    out = Console(highlight=False)
    out.print(f"{len(states)} {'open ' if open_only else ''}alert(s), most urgent first; times {s.alerts.timezone}", style="dim")
    for st in states:
        line = Text()
        line.append(f" {st.priority.value} ", style=PRIORITY_STYLE[st.priority])
        # The words alerts tail uses: 已恢复 once resolved, else 进行中 (open, however many updates it had).
        line.append(" 进行中 " if st.open else " 已恢复 ", style="bold" if st.open else "green")
        line.append(st.title, style="bold")
        acked = ack_text(st.acknowledged_by, st.acknowledged_at, st.ack_note, s.alerts.timezone)
        if acked:
            line.append(f"  [{acked}]", style="green")
        elif st.open:
            line.append("  [未确认]", style="yellow")
        line.append(f"\n    {span(st.first_seen, st.last_seen, s.alerts.timezone)} · {st.total_count} 条 · {st.kind.value} {st.key}", style="dim")
        line.append(f"\n    id {st.alert_id}", style="dim")
        out.print(line)
    for key, opened in health.items():
        line = Text()
        line.append(f" {opened.priority} ", style=PRIORITY_STYLE[Priority(opened.priority)])
        line.append(" 进行中 ", style="bold")
        line.append(opened.title, style="bold")
        acked = ack_text(opened.acknowledged_by, opened.acknowledged_at, opened.ack_note, s.alerts.timezone)
        line.append(f"  [{acked}]" if acked else "  [未确认]", style="green" if acked else "yellow")
        line.append(f"\n    since {local(opened.first_seen, s.alerts.timezone)} · health {key}", style="dim")
        line.append(f"\n    id {opened.alert_id}", style="dim")
        out.print(line)


def _health_json(opened) -> dict:
    """An open health alert as ``alerts list --raw`` prints it."""
    from dataclasses import asdict

    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in asdict(opened).items()}


def _operator(alert_id: str, action: str, note: str | None, by: str | None) -> None:
    import getpass
    import logging

    logging.getLogger("consumers.alerter.state").setLevel(logging.WARNING)

    from consumers.alerter.engine import AlertEngine
    from consumers.alerter.rules import TermMatcher, load_rules
    from consumers.alerter.state import AlertStateStore
    from topics.schemas import utcnow

    s = settings()
    require_broker(s, f"alerts {action}")
    store = _store()
    who = by or getpass.getuser()
    # Health alerts (the pipeline_health flow's) live in its memory, not in the alerter's tables.
    health = _health_action(store, alert_id, action, who, note)
    state = None
    if health is not None:
        alert = health
    else:
        engine = AlertEngine.build(TermMatcher(load_rules(s.alerts.rules_path)), s.alerts, utcnow)
        state = AlertStateStore(store)
        alert = state.operator_action(engine, alert_id, action, who, note)
    console.print(render_alert(alert, s.alerts.timezone))
    # Recorded in the store; now the event for everyone on feedback.alerts.
    from consumers.kafka_io import make_producer, send
    from topics.specs import ALERTS

    producer = make_producer(s)
    try:
        send(producer, s.topic(ALERTS), alert, alert.partition_key()).get(timeout=30)
        producer.flush()
    finally:
        producer.close()
    if state is not None:
        state.mark_published([alert])
    console.print(f"[green]{'acknowledged' if action == 'ack' else 'resolved'} {alert_id}; published on {ALERTS} (revision {alert.revision})[/]")


def _health_action(store, alert_id: str, action: str, who: str, note: str | None):
    """``ack``/``resolve`` of an open health alert (its memory in the store is updated), else None."""
    from pipelines.health import find_open, operator_action
    from pipelines.pipeline_probe import load_memory, save_memory
    from topics.schemas import utcnow

    memory = load_memory(store)
    if find_open(memory, alert_id) is None:
        return None
    alert = operator_action(memory, alert_id, action, who, note, utcnow())
    save_memory(store, memory)
    return alert


@alerts_app.command("ack")
@cli_errors
def ack(
    alert_id: Annotated[str, typer.Argument(help="The alert id (alerts list, alerts tail).")],
    note: Annotated[Optional[str], typer.Option(help="What you are doing about it.")] = None,
    by: Annotated[Optional[str], typer.Option(help="Who acknowledges (default: your login).")] = None,
) -> None:
    """Acknowledge an open alert: recorded in the store, published as an update that carries who, when and the note."""
    _operator(alert_id, "ack", note, by)


@alerts_app.command("resolve")
@cli_errors
def resolve(
    alert_id: Annotated[str, typer.Argument(help="The alert id (alerts list, alerts tail).")],
    note: Annotated[Optional[str], typer.Option(help="What fixed it.")] = None,
    by: Annotated[Optional[str], typer.Option(help="Who resolves (default: your login).")] = None,
) -> None:
    """Resolve an open alert by hand: recorded in the store and published as a resolution event (a signal
    that still fires re-opens the same id)."""
    _operator(alert_id, "resolve", note, by)
