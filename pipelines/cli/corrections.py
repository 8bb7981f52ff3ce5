"""``feedback-miner label`` and ``feedback-miner review``: people correct the model's predictions.

``review`` exports a week's least-confident predictions as a file to fill in (CSV or JSONL);
``label`` records corrections — one on the command line, or that filled-in file — in the store
and publishes each on ``feedback.corrections``. Training reads them (pipelines/flows/training.py).
"""

from __future__ import annotations

import csv
import getpass
import io
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Optional

import typer
from pydantic import ValidationError
from rich.markup import escape

from pipelines.cli.common import cli_errors, console, err_console, require_broker, settings
from topics.schemas import ISSUE_TYPE_ZH, Correction, IssueType, SentimentLabel

corrections_app = typer.Typer()

# The file `review` writes and `label --file` reads. A reviewer fills the last three columns:
# the correct issue types (separated by |, the primary first), the sentiment, a note.
PREDICTED_COLUMNS = ["event_id", "week", "received_at", "channel", "text", "predicted_primary_issue",
                     "predicted_issue_types", "predicted_sentiment", "sentiment_score", "issue_margin",
                     "sentiment_margin"]
FILL_COLUMNS = ["issue_types", "sentiment", "note"]
REVIEW_COLUMNS = PREDICTED_COLUMNS + FILL_COLUMNS

_ISSUE_BY_NAME = {**{t.value: t for t in IssueType}, **{zh: t for t, zh in ISSUE_TYPE_ZH.items()}}
_SENTIMENT_BY_NAME = {**{s.value: s for s in SentimentLabel},
                      "负面": SentimentLabel.negative, "中性": SentimentLabel.neutral, "正面": SentimentLabel.positive}
_SEPARATORS = re.compile(r"[|,，;；、\s]+")


class LabelError(ValueError):
    """A correction that cannot be recorded (the message names what to fix)."""


def parse_issue_types(values: list[str] | str | None) -> list[IssueType]:
    """Taxonomy labels, English or Chinese (``logistics`` or ``物流配送``), repeatable or separated by ``|``/``,``."""
    if values is None:
        return []
    parts = [p for v in ([values] if isinstance(values, str) else values) for p in _SEPARATORS.split(v.strip()) if p]
    unknown = [p for p in parts if p not in _ISSUE_BY_NAME]
    if unknown:
        raise LabelError(f"unknown issue type {', '.join(map(repr, unknown))}; one of: {', '.join(t.value for t in IssueType)}")
    return list(dict.fromkeys(_ISSUE_BY_NAME[p] for p in parts))


def parse_sentiment(value: str | None) -> SentimentLabel | None:
    if value is None or not value.strip():
        return None
    if value.strip() not in _SENTIMENT_BY_NAME:
        raise LabelError(f"unknown sentiment {value.strip()!r}; one of: negative, neutral, positive")
    return _SENTIMENT_BY_NAME[value.strip()]


def build_correction(event_id: str, issue_types: list[IssueType], sentiment: SentimentLabel | None, by: str,
                     note: str | None, text: str | None, prediction: dict | None) -> Correction:
    """One correction from what a person gave and the stored prediction (None: the event is not in the store).

    What is not given is taken from the prediction (the person confirms that part); an event the
    store does not know needs its ``text`` and both labels.
    """
    if not event_id or not event_id.strip():
        raise LabelError("missing event id")
    if prediction is None and not (text and text.strip()):
        raise LabelError(f"unknown event id {event_id!r}: it is not in the store (give its --text to label a "
                         f"message that never went through the pipeline)")
    if not issue_types and sentiment is None:
        raise LabelError(f"{event_id}: give the correct issue type(s), the sentiment, or both")
    if prediction is None and (not issue_types or sentiment is None):
        raise LabelError(f"{event_id}: not in the store, so both the issue type(s) and the sentiment are needed")
    predicted_types = list(prediction["issue_types"]) if prediction else None
    try:
        return _correction(event_id, issue_types, sentiment, by, note, text, prediction, predicted_types)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise LabelError(f"{event_id}: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None


def _correction(event_id, issue_types, sentiment, by, note, text, prediction, predicted_types) -> Correction:
    return Correction(
        event_id=event_id.strip(),
        text=text if text and text.strip() else prediction["text"],
        primary_issue=issue_types[0] if issue_types else prediction["primary_issue"],
        issue_types=issue_types or predicted_types,
        sentiment=sentiment or prediction["sentiment"],
        corrected_by=by,
        note=note or None,
        predicted_primary_issue=prediction["primary_issue"] if prediction else None,
        predicted_issue_types=predicted_types,
        predicted_sentiment=prediction["sentiment"] if prediction else None,
        model_version=prediction["model_version"] if prediction else None,
    )


# --- the batch file --------------------------------------------------------------------------


@dataclass
class FileReport:
    corrections: list[Correction] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)  # line number → reason
    unlabelled: list[int] = field(default_factory=list)  # lines a reviewer left empty (not corrections)


def _file_rows(path: Path) -> Iterator[tuple[int, dict | None, str | None]]:
    """(line number, row, error) for each record of a CSV or JSONL file."""
    raw = path.read_bytes()
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LabelError(f"{path}: not UTF-8 ({exc})") from None
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(content, newline=""))
        if not reader.fieldnames or "event_id" not in reader.fieldnames:
            raise LabelError(f"{path}: line 1 must be a header naming at least event_id, issue_types, sentiment")
        start = 2
        for row in reader:
            if None in row:  # more cells than the header has
                yield start, None, f"{len(row[None])} cell(s) more than the header's {len(reader.fieldnames)}"
            else:
                yield start, row, None
            start = reader.line_num + 1
        return
    if path.suffix.lower() != ".jsonl":
        raise LabelError(f"{path}: expected a .csv or .jsonl file (as 'feedback-miner review' writes)")
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, None, f"invalid JSON ({exc.msg})"
            continue
        if not isinstance(obj, dict):
            yield number, None, "not a JSON object"
            continue
        yield number, obj, None


def _cell(row: dict, name: str) -> str | None:
    value = row.get(name)
    if value is None:
        return None
    if isinstance(value, list):
        return "|".join(str(v) for v in value)
    return str(value).strip() or None


def read_label_file(path: Path, default_by: str, predictions) -> FileReport:
    """Every record of a filled-in review file: a correction, an error with its line, or left unlabelled.

    ``predictions(event_id)`` is the stored prediction or None.
    """
    report = FileReport()
    for number, row, error in _file_rows(Path(path)):
        if error:
            report.errors[number] = error
            continue
        try:
            issue_types = parse_issue_types(_cell(row, "issue_types"))
            sentiment = parse_sentiment(_cell(row, "sentiment"))
            if not issue_types and sentiment is None:
                report.unlabelled.append(number)
                continue
            event_id = _cell(row, "event_id") or ""
            report.corrections.append(build_correction(
                event_id, issue_types, sentiment, _cell(row, "by") or default_by, _cell(row, "note"),
                _cell(row, "text"), predictions(event_id.strip()) if event_id.strip() else None))
        except LabelError as exc:
            report.errors[number] = str(exc)
    return report


def default_user() -> str:
    return os.environ.get("USER") or getpass.getuser()


def _publish_pending(s, store) -> int:
    """Publish every correction the broker has not acknowledged yet (these, and any an earlier run could not send)."""
    from consumers.kafka_io import make_producer, send
    from topics.specs import CORRECTIONS

    pending = store.unpublished()
    if not pending:
        return 0
    producer = make_producer(s)
    try:
        futures = [send(producer, s.topic(CORRECTIONS), c, c.key()) for c in pending]
        producer.flush()
        for future in futures:
            future.get(timeout=30)
    finally:
        producer.close()
    store.mark_published(c.correction_id for c in pending)
    return len(pending)


@corrections_app.command("label")
@cli_errors
def label(
    event_id: Annotated[Optional[str], typer.Argument(help="The event id of the message (review files, alerts, tail).")] = None,
    issue_type: Annotated[Optional[list[str]], typer.Option("--issue-type", "-i", help="Correct issue type (repeatable; the first is primary; English or Chinese name).")] = None,
    sentiment: Annotated[Optional[str], typer.Option("--sentiment", "-s", help="Correct sentiment: negative, neutral, positive.")] = None,
    by: Annotated[Optional[str], typer.Option(help="Who corrects (default: $USER).")] = None,
    note: Annotated[Optional[str], typer.Option(help="Why, for the record.")] = None,
    text: Annotated[Optional[str], typer.Option(help="The text, for a message not in the store.")] = None,
    file: Annotated[Optional[Path], typer.Option("--file", "-f", help="A filled-in review file (.csv or .jsonl) instead of one event.")] = None,
) -> None:
    """Record corrections in the store and publish them on feedback.corrections.

    Exit 0: all recorded; 1: some lines of --file were bad (the rest are recorded); 2: bad input;
    3: Kafka unreachable (recorded corrections are published by the next 'label').
    """
    from consumers.store.corrections import CorrectionStore

    if (file is None) == (event_id is None):
        raise LabelError("give an EVENT_ID or --file FILE (one of them)")
    if file is not None and (issue_type or sentiment or text or note):
        raise LabelError("--file takes the labels from the file; --issue-type, --sentiment, --text and --note go with an EVENT_ID")
    s = settings()
    require_broker(s, "label")
    store = CorrectionStore.from_url(s.store.url)
    who = by or default_user()
    try:
        if file is None:
            corrections = [build_correction(event_id, parse_issue_types(issue_type), parse_sentiment(sentiment), who,
                                            note, text, store.prediction(event_id.strip()))]
            report = FileReport(corrections)
        else:
            if not file.is_file():
                raise LabelError(f"{file}: no such file")
            report = read_label_file(file, who, store.prediction)
        store.record(report.corrections)
        published = _publish_pending(s, store)
    finally:
        store.close()
    for c in report.corrections:
        was = (f" (was {c.predicted_primary_issue.value}, {c.predicted_sentiment.value})"
               if c.predicted_primary_issue and c.predicted_sentiment else "")
        console.print(f"[green]corrected[/] {escape(c.event_id)}: {'|'.join(t.value for t in c.issue_types)}, "
                      f"{c.sentiment.value}{was} by {escape(c.corrected_by)}")
    if file is not None:
        console.print(f"{len(report.corrections)} correction(s) recorded, {len(report.unlabelled)} row(s) left "
                      f"unlabelled, {len(report.errors)} bad line(s); {published} published on feedback.corrections")
    for number, reason in sorted(report.errors.items()):
        err_console.print(f"[red]line {number}:[/] {escape(reason)}", soft_wrap=True)
    if report.errors:
        raise typer.Exit(1)


@corrections_app.command("review")
@cli_errors
def review(
    week: Annotated[str, typer.Option(help="ISO week, e.g. 2026-W48.")],
    out: Annotated[Path, typer.Option(help="File to write: .csv (spreadsheet) or .jsonl.")],
    limit: Annotated[Optional[int], typer.Option(min=1, help="How many predictions (default: corrections.review_limit).")] = None,
) -> None:
    """Export the week's least-confident predictions for people to label (then: label --file)."""
    from consumers.store.corrections import CorrectionStore
    from consumers.themes.weeks import parse_week
    from models.corrections_data import least_confident

    try:
        parse_week(week)
    except ValueError as exc:
        raise LabelError(f"--week {week!r}: {exc}") from None
    if out.suffix.lower() not in (".csv", ".jsonl"):
        raise LabelError(f"--out {out}: expected a .csv or .jsonl file")
    s = settings()
    store = CorrectionStore.from_url(s.store.url)
    try:
        predictions = store.week_predictions(week)
        corrected = {c.event_id for c in store.history()}
    finally:
        store.close()
    todo = [p for p in predictions if p["event_id"] not in corrected]
    rows = [review_row(p, s.alerts.timezone) for p in least_confident(todo, limit or s.corrections.review_limit)]
    write_review_file(out, rows)
    console.print(f"wrote {len(rows)} of {len(predictions)} prediction(s) of {week} to {escape(str(out))} "
                  f"(least confident first; {len(predictions) - len(todo)} already corrected left out); fill in "
                  f"{', '.join(FILL_COLUMNS)}, then: feedback-miner label --file {escape(str(out))}")
    if not predictions:
        err_console.print(f"[yellow]no stored predictions in {week}[/]")


def review_row(p: dict, tz: str | None = None) -> dict:
    """One row of the review file; times in the configured zone (alerts.timezone), as every view for people shows them."""
    from consumers.alerter.display import zone

    return {
        "event_id": p["event_id"], "week": p["week"], "received_at": p["received_at"].astimezone(zone(tz)).isoformat(),
        "channel": p["channel"], "text": p["text"], "predicted_primary_issue": p["primary_issue"],
        "predicted_issue_types": "|".join(p["issue_types"]), "predicted_sentiment": p["sentiment"],
        "sentiment_score": round(float(p["sentiment_score"]), 4), "issue_margin": p["issue_margin"],
        "sentiment_margin": p["sentiment_margin"], "issue_types": "", "sentiment": "", "note": "",
    }


def write_review_file(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        return
    # A byte-order mark so spreadsheet programs read the Chinese text as UTF-8.
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=REVIEW_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
