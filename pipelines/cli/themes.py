"""``feedback-miner digest`` and ``feedback-miner themes …``: the weekly digest and the live themes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from pipelines.cli.common import cli_errors, console, settings

digest_app = typer.Typer()
themes_app = typer.Typer(help="Live and weekly themes.", no_args_is_help=True)


@digest_app.command("digest")
@cli_errors
def digest(
    week: Annotated[str, typer.Option(help="ISO week, e.g. 2026-W47.")],
    announce: Annotated[bool, typer.Option(help="Announce on feedback.digests (needs a configured broker).")] = True,
    flow: Annotated[bool, typer.Option(help="Run as the Prefect flow (starts a temporary local Prefect server).")] = False,
) -> None:
    """Cluster one week's feedback into themes and write the product digest (HTML + Markdown)."""
    from pipelines.digest.build import kafka_announcer, run_digest

    s = settings()
    if flow:
        from pipelines.flows.digest import weekly_digest_flow

        result = weekly_digest_flow(week=week, announce=announce)
        console.print(f"HTML: {result['html_path']}\nMarkdown: {result['markdown_path']}")
        return
    announcer = kafka_announcer(s) if announce and s.kafka.bootstrap_servers else None
    outcome = run_digest(s, week, announce=announcer)
    print_digest_summary(console, outcome)
    if announce and announcer is None:
        console.print("[yellow]not announced:[/] no Kafka bootstrap servers configured")

@themes_app.command("calibrate")
@cli_errors
def calibrate(
    data_dir: Annotated[Optional[Path], typer.Option(help="Folder with the labelled review files (default: the shared_data setting).")] = None,
    per_topic: Annotated[int, typer.Option(help="Reviews sampled per topic (domain × polarity).")] = 150,
    precision: Annotated[Optional[float], typer.Option(help="Target precision of the weekly 'same theme' decisions (default: best separation, Youden's J).")] = None,
    live_precision: Annotated[float, typer.Option(help="Target precision of the live-theme curve (a message joins a theme).")] = 0.9,
    out: Annotated[Optional[Path], typer.Option(help="Write the result as JSON here.")] = None,
    write_center: Annotated[bool, typer.Option(help="First re-measure the centre subtracted from theme embeddings (after the theme representation changed).")] = False,
) -> None:
    """Calibrate the live-theme threshold curve and the weekly merge/continuity similarities on real reviews."""
    from pipelines.themes_calibration import run_calibration

    s = settings()
    result = run_calibration(s, data_dir or s.shared_data, per_topic, precision, live_precision, write_center)
    text = json.dumps(result, ensure_ascii=False, indent=1)
    if out:
        out.write_text(text + "\n", encoding="utf-8")
    console.print(text)

@themes_app.command("list")
@cli_errors
def list_themes(
    week: Annotated[Optional[str], typer.Option(help="A week's snapshot instead of the live themes.")] = None,
    show_all: Annotated[bool, typer.Option("--all", help="Also the candidate themes (fewer members than enrichment.live.promote_at).")] = False,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many themes, largest first.")] = 30,
) -> None:
    """Show the live themes (or one week's snapshot) from the store, largest first, each with its name:
    the digest's label, else the keywords of its members."""
    from rich.table import Table

    from consumers.alerter.display import local
    from consumers.store.feedback_store import FeedbackStore
    from pipelines.stages import theme_label_lookup

    s = settings()
    store = FeedbackStore.from_url(s.store.url)
    notes = []
    try:
        if week:
            snapshot = sorted(store.load_week(week), key=lambda t: (-t.size, t.theme_id))
            table = Table("theme", "status", "size", "last week", "keywords", title=f"themes of {week}, largest first")
            for t in snapshot[:limit]:
                table.add_row(t.theme_id, t.status, str(t.size), str(t.previous_size), " ".join(t.keywords))
            hidden_smaller = max(0, len(snapshot) - limit)
        else:
            live = sorted(store.load_themes(), key=lambda t: (t.status != "active", -t.size, t.theme_id))
            candidates = sum(t.status != "active" for t in live)
            shown = live if show_all else [t for t in live if t.status == "active"]
            name = theme_label_lookup(s, store.engine)
            table = Table("theme", "members", "status", "last joined", "id",
                          title=f"live themes, largest first; times {s.alerts.timezone}")
            for t in shown[:limit]:
                table.add_row(t.label or name(t.theme_id) or "-", str(t.size), t.status,
                              local(t.updated_at, s.alerts.timezone)[5:16], t.theme_id)  # 12-08 07:47: the zone is in the title
            hidden_smaller = max(0, len(shown) - limit)
            if candidates and not show_all:
                notes.append(f"{candidates} candidate theme(s) with fewer than {s.enrichment.live.promote_at} members "
                             "not shown (--all shows them)")
        if hidden_smaller:
            notes.append(f"{hidden_smaller} smaller theme(s) not shown (--limit)")
    finally:
        store.close()
    console.print(table)
    for note in notes:
        console.print(note, style="dim")


def print_digest_summary(console, outcome) -> None:
    d = outcome.digest
    changes = "first week, nothing to compare with" if d.first_week else f"{len(d.emerging)} emerging"
    themes = f"{len(d.themes)} theme" + ("" if len(d.themes) == 1 else "s")
    console.print(f"[bold]digest {d.week}[/]: {d.total} messages, {themes}, {changes}")
    console.print(f"  HTML:     {outcome.html_path}\n  Markdown: {outcome.markdown_path}")
    for t in d.top_themes[:5]:
        growth = "first week" if t.status == "first_week" else "new" if not t.previous_size else f"{t.previous_size}→{t.size}"
        flag = " [bold]emerging[/]" if t.emerging else " fading" if t.fading else ""
        console.print(f"  {t.size:>5}  {' / '.join(t.keywords[:4]) or t.theme_id}  ({growth}){flag}")
    if outcome.announced:
        console.print("  announced on feedback.digests")
