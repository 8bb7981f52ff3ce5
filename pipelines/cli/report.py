"""Rendering the main job's results for a person at a terminal."""

from __future__ import annotations

from collections import Counter

from rich.console import Console
from rich.table import Table

from consumers.alerter.engine import clip
from pipelines.cli.alerts import render_alert
from pipelines.main_job import MainJobReport
from topics.schemas import ISSUE_TYPE_ZH, Alert, IssueType
from topics.specs import ALERTS, DEADLETTER, ENRICHED, NORMALIZED


def _print_alerts(console: Console, events: list[dict], already_processed: int = 0, tz: str | None = None) -> None:
    """The alerts this run published: the latest revision of each alert id, highest priority first.

    ``already_processed``: enriched events an earlier run had processed; they are not counted
    again and their acknowledged alerts are not published again (docs/alerts.md, idempotence).
    """
    if already_processed:
        console.print(
            f"{ALERTS}: {already_processed} events were already processed by an earlier run: not counted again, "
            f"alerts already published for them not repeated" + ("; no new alerts" if not events else "")
        )
        if not events:
            return
    latest: dict[str, dict] = {}
    for event in events:
        if event["revision"] >= latest.get(event["alert_id"], {}).get("revision", -1):
            latest[event["alert_id"]] = event
    # One block per alert, as `alerts tail` shows them: a table of eight columns is unreadable at 80.
    console.print(f"[bold]{ALERTS}[/] ({len(latest)} alerts, {len(events)} events), most urgent first")
    for alert in sorted(latest.values(), key=lambda a: (a["priority"], a["first_seen"])):
        console.print(render_alert(Alert.model_validate(alert), tz))


def print_main_job_report(console: Console, report: MainJobReport) -> None:
    published = report.published
    console.rule("[bold]feedback-miner main job")
    console.print(
        f"published {len(published.accepted)} valid events "
        f"({len(published.rejected)} rejected by validation), sent {report.malformed_sent} malformed messages"
    )
    stages = Table("stage", "processed", "produced", "dead-lettered", title="stages")
    for name, stats in report.stage_stats.items():
        stages.add_row(name, str(stats["processed"]), str(stats["produced"]), str(stats["dead_lettered"]))
    console.print(stages)

    normalized = report.topics.get(NORMALIZED, [])
    enriched = {event["event_id"]: event for event in report.topics.get(ENRICHED, [])}
    table = Table(
        "event", "ch", "text (redacted)", "issue", "sentiment", "notes",
        title=f"{NORMALIZED} ({len(normalized)}) → {ENRICHED} ({len(enriched)})",
    )
    for event in sorted(normalized, key=lambda e: e["received_at"]):
        classified = enriched.get(event["event_id"])
        issue = sentiment = ""
        if classified:
            issue = ISSUE_TYPE_ZH.get(IssueType(classified["primary_issue"]), classified["primary_issue"])
            extra = [t for t in classified["issue_types"] if t != classified["primary_issue"]]
            issue += "".join(f" +{ISSUE_TYPE_ZH[IssueType(t)]}" for t in extra)
            score = classified["sentiment"]["score"]
            colour = "red" if score < -0.3 else "green" if score > 0.3 else "white"
            sentiment = f"[{colour}]{classified['sentiment']['label'][:3]} {score:+.2f}[/]"
        notes = [f"{kind}×{count}" for kind, count in sorted((event.get("pii") or {}).items())]
        notes += event.get("flags") or []
        if event.get("duplicate_of"):
            notes.append(f"dup of {event['duplicate_of']}")
        table.add_row(
            event["event_id"].removeprefix("sample-"), event["channel"][:2], clip(event["text"], 34),
            issue, sentiment, clip(", ".join(notes), 30),
        )
    console.print(table)
    duplicates = sum(1 for event in normalized if event.get("duplicate_of"))
    redacted = sum(sum((event.get("pii") or {}).values()) for event in normalized)
    console.print(f"normalizer: {duplicates} duplicates linked (still forwarded), {redacted} PII items redacted")

    alerts = report.alerts if report.alerts is not None else report.topics.get(ALERTS, [])
    _print_alerts(console, alerts, report.alerts_already_processed)

    dead = report.topics.get(DEADLETTER, [])
    dlq = Table("stage", "reason", "error", title=f"{DEADLETTER} ({len(dead)})")
    for entry in dead:
        dlq.add_row(entry["stage"], entry["reason"], clip(entry["error"], 80))
    console.print(dlq)
    reasons = Counter(entry["reason"] for entry in dead)
    if reasons:
        console.print("dead-letter reasons: " + ", ".join(f"{k}={v}" for k, v in sorted(reasons.items())))
    for outcome in report.digests:
        from pipelines.cli.themes import print_digest_summary

        print_digest_summary(console, outcome)
    if not report.drained:
        console.print("[red]the stream did not drain before the timeout[/]")
