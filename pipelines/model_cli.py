"""Model commands: ``train``, ``eval`` and ``bench model``.

``eval`` is a stable interface (used for independent evaluation): it prints exactly one
JSON object as the last line of stdout; progress goes to stderr.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer


def _settings():
    from topics.settings import Settings

    return Settings()


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


def eval_command(
    task: str = typer.Option(..., "--task", help="sentiment | issue_type"),
    data: Path = typer.Option(..., "--data", help="JSONL file: {text, label[, labels]} per line"),
    model_dir: Path | None = typer.Option(None, "--model-dir", help="encoder folder cache (default: settings)"),
    artifacts: Path | None = typer.Option(None, "--artifacts", help="trained artifacts (default: models/artifacts)"),
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

    ms = _settings().model
    model = FeedbackModel.load(
        model_dir or ms.dir,
        artifacts,
        quantize=ms.quantize if quantize is None else quantize,
        max_length=max_length or ms.max_length,
        num_threads=ms.num_threads,
        max_batch_tokens=ms.max_batch_tokens,
    )
    with _stderr_progress(len(rows), "eval") as prog:
        tid = prog.add_task(f"eval {task}", total=len(rows))
        report = evaluate(model, rows, task, batch_size=batch_size or ms.batch_size,
                          progress=lambda k: prog.advance(tid, k))
    sys.stdout.write(json.dumps(report, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def train_command(
    out: Path | None = typer.Option(None, "--out", help="artifacts folder (default: models/artifacts)"),
    shared_data: Path | None = typer.Option(None, "--shared-data", help="folder of the real sentiment sets"),
    issue_data: Path | None = typer.Option(None, "--issue-data", help="folder of the issue-type set"),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="embedding/state caches (default: var/cache)"),
    eval_dir: Path | None = typer.Option(None, "--eval-dir", help="dev / held-out-domain JSONL files for eval and "
                                         "bench (default: eval/ beside the cache dir, i.e. var/eval)"),
    model_dir: Path | None = typer.Option(None, "--model-dir"),
    epochs: float = typer.Option(1.5, "--epochs"),
    seed: int = typer.Option(13, "--seed"),
    max_sentiment_rows: int = typer.Option(40000, "--max-sentiment-rows"),
    all_sentiment_rows: bool = typer.Option(
        False, "--all-sentiment-rows", help="train on every real sentiment row outside dev, not only the per-source "
        "draws (≈ 71k rows; raise --max-sentiment-rows to keep them); dev rows stay the same"),
    written_sentiment: bool = typer.Option(
        False, "--written-sentiment/--no-written-sentiment",
        help="add the self-written reviews of data/sentiment_written (domains the real sets lack; "
        "measured, not adopted: see METHOD.md)"),
    split_layer: int = typer.Option(4, "--split-layer", help="layers above this one are tuned; those below stay frozen"),
    prefix: str = typer.Option("", "--prefix", help="text put before every input ('query: ' as e5 was pre-trained; "
                               "none by default: the tuned model does not need it)"),
    lr: float = typer.Option(1e-4, "--lr", help="learning rate of the tuned encoder layers"),
    distill_weight: float = typer.Option(0.5, "--distill-weight", help="weight of the keep-close-to-e5 term"),
    skip_finetune: bool = typer.Option(False, "--skip-finetune", help="keep the shipped encoder layers; retrain heads"),
    lexical: bool = typer.Option(True, "--lexical/--no-lexical",
                                 help="blend the issue-type and sentiment heads with heads on character n-grams"),
    quick: bool = typer.Option(False, "--quick", help="tiny run for smoke tests"),
    holdout_domain: list[str] = typer.Option(
        None, "--holdout-domain", help="keep a domain out of training to measure cross-domain accuracy "
        "(hotel, waimai, weibo, shopping, shopping/<category> or written/<domain>)"),
) -> None:
    """Train the classifiers; write artifacts, metrics JSON and the model card."""
    from models.training import TrainConfig, train

    ms = _settings().model
    cfg = TrainConfig(
        out=out,
        shared_data=shared_data,
        issue_data=issue_data,
        cache_dir=cache_dir,
        eval_dir=eval_dir,
        model_dir=model_dir or ms.dir,
        epochs=epochs,
        seed=seed,
        max_sentiment_rows=max_sentiment_rows,
        all_sentiment_rows=all_sentiment_rows,
        written_sentiment=written_sentiment,
        split_layer=split_layer,
        prefix=prefix,
        skip_finetune=skip_finetune,
        lexical=lexical,
        sentiment_lexical=lexical,
        lr_layers=lr,
        distill_weight=distill_weight,
        quick=quick,
        holdout_domains=list(holdout_domain or []),
    )
    metrics = train(cfg)
    typer.echo(json.dumps(metrics.get("summary", {}), ensure_ascii=False))


def bench_model_command(
    data: list[Path] = typer.Option(None, "--data", help="sentiment JSONL file(s) for the accuracy change"),
    out: Path = typer.Option(Path("benchmarks/model.json"), "--out"),
    model_dir: Path | None = typer.Option(None, "--model-dir"),
    artifacts: Path | None = typer.Option(None, "--artifacts"),
    batch_sizes: str = typer.Option("1,16,64", "--batch-sizes"),
    n_sentences: int = typer.Option(512, "--sentences", help="sentences timed per batch size"),
    repeats: int = typer.Option(5, "--repeats"),
    num_threads: int | None = typer.Option(None, "--num-threads"),
) -> None:
    """Sentences/s at several batch sizes, fp32 vs quantised, and the quantised accuracy change."""
    from models.bench import run_bench

    ms = _settings().model
    report = run_bench(
        model_dir=model_dir or ms.dir,
        artifacts=artifacts,
        data=list(data or []),
        batch_sizes=[int(b) for b in batch_sizes.split(",") if b.strip()],
        n_sentences=n_sentences,
        repeats=repeats,
        max_length=ms.max_length,
        num_threads=num_threads or ms.num_threads,
        max_batch_tokens=ms.max_batch_tokens,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.write(json.dumps(report, ensure_ascii=False) + "\n")
