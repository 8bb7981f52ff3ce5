"""``feedback-miner train`` and ``feedback-miner eval``.

``eval`` is a stable interface (used for independent evaluation): it prints exactly one
JSON object as the last line of stdout; progress goes to stderr.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from rich.markup import escape

from pipelines.cli.common import cli_errors, console, settings

model_app = typer.Typer()


def _stderr_progress(total: int, description: str):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )


@model_app.command("eval")
def eval_command(
    task: str = typer.Option(..., "--task", help="sentiment | issue_type | aspect_sentiment"),
    data: Path = typer.Option(..., "--data", help="JSONL file: {text, label[, labels]} per line"),
    model_dir: Path | None = typer.Option(None, "--model-dir", help="encoder folder cache (default: settings)"),
    artifacts: Path | None = typer.Option(None, "--artifacts", help="trained artifacts (default: the promoted version, else models/artifacts)"),
    batch_size: int | None = typer.Option(None, "--batch-size"),
    max_length: int | None = typer.Option(None, "--max-length"),
    quantize: bool | None = typer.Option(None, "--quantize/--no-quantize", help="int8 path (default: settings)"),
) -> None:
    """Evaluate on a labelled JSONL file; the last stdout line is a JSON report."""
    from models.evaluation import TASKS, EvalDataError, evaluate, read_eval_file

    if task not in TASKS:
        typer.echo(f"error: --task must be one of {', '.join(TASKS)}", err=True)
        raise typer.Exit(2)
    try:
        rows = read_eval_file(data, task)
    except EvalDataError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    from models.feedback_model import FeedbackModel

    ms = settings().model
    model = FeedbackModel.load(
        model_dir or ms.dir,
        artifacts,
        quantize=ms.quantize if quantize is None else quantize,
        max_length=max_length or ms.max_length,
        num_threads=ms.num_threads,
        max_batch_tokens=ms.max_batch_tokens,
        registry_dir=settings().promotion.registry_dir,  # without --artifacts: the model served now
    )
    with _stderr_progress(len(rows), "eval") as prog:
        tid = prog.add_task(f"eval {task}", total=len(rows))
        report = evaluate(model, rows, task, batch_size=batch_size or ms.batch_size,
                          progress=lambda k: prog.advance(tid, k))
    sys.stdout.write(json.dumps(report, ensure_ascii=False) + "\n")
    sys.stdout.flush()


@model_app.command("train")
def train_command(
    out: Path | None = typer.Option(None, "--out", help="artifacts folder (default: models/artifacts)"),
    shared_data: Path | None = typer.Option(None, "--shared-data", help="folder of the real sentiment sets "
                                            "(default: the setting shared_data, FEEDBACK_MINER_SHARED_DATA)"),
    issue_data: Path | None = typer.Option(None, "--issue-data", help="folder of the issue-type set (default: "
                                           "data/issue_type)"),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="frozen-layer state cache (default: var/cache); "
                                          "the dev / held-out-domain eval files go to eval/ beside it"),
    model_dir: Path | None = typer.Option(None, "--model-dir", help="encoder folder cache (default: settings)"),
    skip_finetune: bool = typer.Option(False, "--skip-finetune", help="keep the shipped encoder layers; refit the "
                                       "heads (how the shipped heads were made)"),
    prefix: str = typer.Option("", "--prefix", help="text put before every input (none by default; 'query: ' "
                               "repeats the recipe of the shipped encoder layers)"),
    holdout_domain: list[str] = typer.Option(
        None, "--holdout-domain", help="keep a domain out of training to measure cross-domain accuracy "
        "(hotel, waimai, weibo, shopping or shopping/<category>)"),
    quick: bool = typer.Option(False, "--quick", help="tiny run for smoke tests"),
) -> None:
    """Train the classifiers; write artifacts, metrics JSON and the model card.

    The recipe is fixed (models/artifacts/METHOD.md, which also says how to rerun the experiments
    that are no longer options).
    """
    from models.training import TrainConfig, train

    s = settings()
    cfg = TrainConfig(
        out=out,
        shared_data=shared_data or s.shared_data,
        issue_data=issue_data,
        cache_dir=cache_dir,
        model_dir=model_dir or s.model.dir,
        prefix=prefix,
        skip_finetune=skip_finetune,
        quick=quick,
        holdout_domains=list(holdout_domain or []),
    )
    metrics = train(cfg)
    typer.echo(json.dumps(metrics.get("summary", {}), ensure_ascii=False))


# --- promoted models: `feedback-miner model status|rollback` ----------------------------------

model_group = typer.Typer(help="The served model: promoted versions, rollback (and train / eval, as above).",
                          no_args_is_help=True)
model_group.command("eval")(eval_command)
model_group.command("train")(train_command)


@model_group.command("status")
@cli_errors
def status_command(last: int = typer.Option(5, "--last", min=0, help="How many log entries to show.")) -> None:
    """The version served now and the last promotion decisions (promotions.json)."""
    from models.promotion import SHIPPED, current_artifacts, current_version, read_log

    registry = settings().promotion.registry_dir
    version = current_version(registry) or SHIPPED
    console.print(f"serving [bold]{escape(version)}[/] ({escape(str(current_artifacts(registry)))})")
    for entry in read_log(registry)[-last:] if last else []:
        if entry["action"] == "rollback":
            console.print(f"  {entry['at']} rollback {entry['from']} → {entry['to']} by {escape(entry['by'])}")
        else:
            console.print(f"  {entry['at']} {entry['action']} {escape(entry.get('version', entry['candidate']))} "
                          f"(over {entry['previous']}) by {escape(entry['by'])}: {escape(entry['decision']['reason'])}")


@model_group.command("rollback")
@cli_errors
def rollback_command(by: str | None = typer.Option(None, help="Who rolls back (default: $USER).")) -> None:
    """Serve the model that was served before the last promotion (stages pick it up when they restart)."""
    import getpass
    import os

    from models.promotion import rollback

    registry = settings().promotion.registry_dir
    record = rollback(registry, by or os.environ.get("USER") or getpass.getuser())
    console.print(f"[green]rolled back[/] {escape(record['from'])} → {escape(record['to'])}; restart the enricher "
                  f"to serve it")
