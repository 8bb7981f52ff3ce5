"""The stream commands: ``broker``, ``publish``, ``tail``, ``consume``, ``replay`` and the main job ``run``."""

from __future__ import annotations

import base64
import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from pipelines.cli.common import cli_errors, console, err_console, require_broker, settings, state
from pipelines.cli.topics import print_topic_statuses
from topics.settings import ENV_PREFIX

stream_app = typer.Typer()


@stream_app.command()
@cli_errors
def broker(port: Annotated[int, typer.Option(help="Loopback port to listen on.")] = 9092) -> None:
    """Run the embedded Kafka-protocol broker (Tansu, memory storage) in the foreground."""
    from topics.admin import ensure_topics
    from topics.embedded import EmbeddedBroker

    import signal

    # SIGTERM leaves through the context manager, which stops the broker process.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    s = settings()
    with EmbeddedBroker(port=port) as b:
        live = s.model_copy(update={"kafka": s.kafka.model_copy(update={"bootstrap_servers": b.bootstrap_servers})})
        print_topic_statuses(ensure_topics(live))
        console.print(f"broker on [bold]{b.bootstrap_servers}[/]; in another shell:\n  export {ENV_PREFIX}KAFKA__BOOTSTRAP_SERVERS={b.bootstrap_servers}")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            console.print("stopping broker")


@stream_app.command()
@cli_errors
def publish(
    file: Annotated[Path, typer.Argument(help="JSONL file of raw feedback events, or - for stdin; with --channel email an .eml or .mbox file.")],
    channel: Annotated[Optional[str], typer.Option(help="'email': FILE holds raw e-mail (.eml/.mbox), wrapped as email events.")] = None,
) -> None:
    """Validate raw feedback events and publish them to feedback.raw (acks=all).

    Every line is accepted or rejected with its line number and reason (the reason the
    normalizer would dead-letter it with); the report is printed even when Kafka fails
    midway. Exit 0: all accepted; 1: some rejected; 2: bad input or configuration; 3: Kafka.
    """
    from kafka.errors import KafkaError
    from rich.progress import Progress

    from pipelines.publishing import PublishReport, parse_email_files, parse_lines, publish_events

    s = settings()
    require_broker(s, "publish")
    if channel not in (None, "email"):
        raise ValueError(f"--channel {channel!r} is not supported (only 'email'; other channels publish JSONL)")
    unit = "message" if channel == "email" else "line"
    report = PublishReport()
    items: list | None = None
    try:
        if channel == "email":
            items = list(parse_email_files([file], s.runtime.max_event_bytes))
        else:
            lines = sys.stdin.buffer.read().splitlines() if str(file) == "-" else file.read_bytes().splitlines()
            items = list(parse_lines(lines, s.runtime.max_event_bytes))
        with Progress(console=err_console, transient=True) as progress:
            task = progress.add_task("publishing", total=len(items))
            publish_events(s, items, on_progress=lambda: progress.advance(task), report=report)
    except (KafkaError, ValueError, OSError):
        raise  # one red line and the exit code (cli_errors), after the report below
    except Exception as exc:  # noqa: BLE001 - never a traceback: one line, exit 2
        from rich.markup import escape

        raise ValueError(escape(f"publishing stopped: {type(exc).__name__}: {exc}")) from None
    finally:
        if items is not None:  # the input was read: whatever happened next, say what became of each line
            _print_publish_report(report, unit)
    if report.rejected:
        raise typer.Exit(1)


def _print_publish_report(report, unit: str) -> None:
    """Rejected lines with their reasons, unsent ones as ranges, then the counts (stdout)."""
    from rich.markup import escape

    for rejected in sorted(report.rejected, key=lambda r: r.line):
        err_console.print(f"[yellow]{unit} {rejected.line} rejected[/] ({rejected.reason}): {escape(rejected.error)}", soft_wrap=True)
    if report.unsent:
        spans: list[list[int]] = []
        for number in sorted(r.line for r in report.unsent):
            if spans and number == spans[-1][1] + 1:
                spans[-1][1] = number
            else:
                spans.append([number, number])
        ranges = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)
        plural = "s" if len(report.unsent) > 1 else ""
        err_console.print(f"[red]{unit}{plural} {ranges} not published[/] ({escape(report.error or report.unsent[0].error)})", soft_wrap=True)
    summary = f"[green]{len(report.accepted)} accepted[/], [{'red' if report.rejected else 'green'}]{len(report.rejected)} rejected[/]"
    if report.unsent:
        summary += f", [red]{len(report.unsent)} not published[/]"
    console.print(summary)


@stream_app.command()
@cli_errors
def tail(
    topic: Annotated[str, typer.Argument(help="Logical topic name, e.g. feedback.normalized.")],
    from_beginning: Annotated[bool, typer.Option(help="Start at the oldest record instead of new ones.")] = True,
    max_records: Annotated[Optional[int], typer.Option("--max", help="Stop after this many records.")] = None,
    timeout: Annotated[Optional[float], typer.Option(help="Stop after this many seconds without records.")] = None,
    raw: Annotated[bool, typer.Option(help="Print one JSON object per line (for scripts).")] = False,
) -> None:
    """Follow a topic and pretty-print its events."""
    from consumers.kafka_io import follow_topic

    s = settings()
    require_broker(s, "tail")
    records = follow_topic(s, topic, from_beginning, timeout)
    try:
        for seen, record in enumerate(records, start=1):
            _print_record(record, raw)
            if max_records is not None and seen >= max_records:
                break
    except KeyboardInterrupt:
        pass
    finally:
        records.close()


def _print_record(record, raw: bool) -> None:
    try:
        value = json.loads(record.value)
    except (TypeError, ValueError):
        value = {"undecodable_base64": base64.b64encode(record.value or b"").decode()}
    if raw:
        print(json.dumps(value, ensure_ascii=False), flush=True)
        return
    key = record.key.decode("utf-8", "replace") if record.key else "-"
    console.rule(f"[bold]{record.topic}[/] p{record.partition}@{record.offset} key={key}", align="left")
    console.print_json(data=value, ensure_ascii=False)


@stream_app.command()
@cli_errors
def consume(
    stage: Annotated[str, typer.Argument(help="Stage name, e.g. normalizer.")],
    max_messages: Annotated[Optional[int], typer.Option(help="Stop after this many messages.")] = None,
    idle_exit: Annotated[Optional[float], typer.Option(help="Stop after this many idle seconds.")] = None,
) -> None:
    """Run one stream stage as a long-lived consumer (SIGTERM finishes the batch and commits)."""
    from consumers.runtime import run_stage
    from pipelines.stages import build_stage

    s = settings()
    require_broker(s, "consume")
    stats = run_stage(build_stage(stage, s), s, max_messages=max_messages, idle_exit_s=idle_exit)
    console.print(f"{stage}: {stats.processed} processed, {stats.produced} produced, {stats.dead_lettered} dead-lettered in {stats.batches} batches")


@stream_app.command()
@cli_errors
def replay(
    reason: Annotated[Optional[str], typer.Option(help="Only dead letters with this reason code.")] = None,
    stage: Annotated[Optional[str], typer.Option(help="Only dead letters from this stage.")] = None,
    from_offset: Annotated[int, typer.Option(help="Skip dead letters before this offset (the last run printed it).")] = 0,
    dry_run: Annotated[bool, typer.Option(help="Only count what would be replayed.")] = False,
) -> None:
    """Replay dead-lettered originals to their source topic, after the cause was fixed."""
    from pipelines.dead_letters import replay_dead_letters

    s = settings()
    require_broker(s, "replay")
    report = replay_dead_letters(s, reason=reason, stage=stage, from_offset=from_offset, dry_run=dry_run)
    reasons = ", ".join(f"{k}={v}" for k, v in sorted(report.by_reason.items())) or "none"
    console.print(f"selected {report.selected} ({reasons}), replayed {report.replayed}; next --from-offset {report.next_offset}")


# --- the main job -------------------------------------------------------------------


@stream_app.command("run")
@cli_errors
def run_job(
    feedback: Annotated[Optional[Path], typer.Option(help="Raw feedback JSONL (default: the bundled samples).")] = None,
    malformed: Annotated[bool, typer.Option(help="Also send the bundled malformed messages, to show dead-lettering.")] = True,
    timeout: Annotated[float, typer.Option(help="Give up waiting for the stream to drain after this many seconds.")] = 300.0,
) -> None:
    """The main job: publish feedback, run every stage until drained, show what came out.

    With no bootstrap servers configured it runs on an embedded broker.
    """
    import logging

    from pipelines.main_job import run_main_job, sample_path
    from pipelines.cli.report import print_main_job_report

    # The report is the output here: keep the log to warnings unless --log-level asked for more.
    if not state.log_level_given:
        logging.getLogger().setLevel(logging.WARNING)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    s = settings()
    report = run_main_job(s, feedback, sample_path("malformed.jsonl") if malformed else None, timeout)
    print_main_job_report(console, report)
    if not report.drained:
        raise typer.Exit(1)
