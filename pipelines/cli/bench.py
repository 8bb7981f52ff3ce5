"""``feedback-miner bench …``: every benchmark, each writing a JSON report (figures in the README)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from pipelines.cli.common import cli_errors, console, settings

bench_app = typer.Typer(help="Benchmarks (each writes a JSON report).", no_args_is_help=True)


def write_report(out: Path, report: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    console.print_json(data=report.get("summary", report))
    console.print(f"wrote {out}")


@bench_app.command("alerts")
@cli_errors
def bench_alerts(
    out: Annotated[Path, typer.Option(help="Where to write the JSON report.")] = Path("benchmarks/alerts.json"),
    seeds: Annotated[int, typer.Option(help="Streams per scenario (different random seeds).")] = 5,
    steady_hours: Annotated[float, typer.Option(help="Length of each steady stream (event time).")] = 168.0,
) -> None:
    """Spike detection quality on synthetic streams: detection delay, false-positive rate, throughput."""
    from pipelines.bench.alerts import run_alert_benchmark

    s = settings()
    write_report(out, run_alert_benchmark(s.alerts, seeds=seeds, steady_hours=steady_hours, log=lambda m: console.print(m)))


@bench_app.command("themes")
@cli_errors
def bench_themes(
    messages: Annotated[int, typer.Option(help="Messages to cluster.")] = 100_000,
    real: Annotated[int, typer.Option(help="Real reviews encoded as the base of the synthetic week.")] = 3000,
    data_dir: Annotated[Optional[Path], typer.Option(help="Folder with the labelled review files (default: the shared_data setting).")] = None,
    threads: Annotated[int, typer.Option(help="CPU threads (the target is 2 cores).")] = 2,
    two_weeks: Annotated[bool, typer.Option("--two-weeks", help="Two weeks of real reviews with planted growing/fading stories through the weekly theme logic.")] = False,
    seeds: Annotated[str, typer.Option(help="--two-weeks: comma-separated seeds (each plants other real stories).")] = "1,2,3",
    cache_dir: Annotated[Path, typer.Option(help="--two-weeks: cache of the model's outputs per text (git-ignored).")] = Path("var/theme-bench"),
    out: Annotated[Optional[Path], typer.Option(help="JSON report (default: benchmarks/themes.json, with --two-weeks benchmarks/themes_two_weeks.json).")] = None,
) -> None:
    """Time weekly clustering of N messages and score it on labelled real reviews; or (--two-weeks) the weekly themes end to end."""
    s = settings()
    if two_weeks:
        from pipelines.bench.themes import run_two_week_benchmark

        report = run_two_week_benchmark(s, data_dir or s.shared_data, [int(x) for x in seeds.split(",")], cache_dir, threads, messages)
        write_report(out or Path("benchmarks/themes_two_weeks.json"), report)
        return
    from pipelines.bench.themes import run_themes_benchmark

    report = run_themes_benchmark(s, messages, real, data_dir or s.shared_data, threads)
    write_report(out or Path("benchmarks/themes.json"), report)


@bench_app.command("normalizer")
@cli_errors
def bench_normalizer(
    out: Annotated[Path, typer.Option(help="Where to write the JSON report.")] = Path("benchmarks/normalizer.json"),
    postgres_url: Annotated[Optional[str], typer.Option(help="Also measure the dedup index on this PostgreSQL URL (tables are created there).")] = None,
    dup_share: Annotated[float, typer.Option(help="Share of texts sent again with a small edit.")] = 0.3,
) -> None:
    """Normalizer throughput without and with the store-backed dedup index, and near-duplicate recall."""
    import tempfile

    from pipelines.bench.normalizer import benchmark

    with tempfile.TemporaryDirectory() as tmp:
        urls = {"sqlite": f"sqlite:///{tmp}/bench.db"}
        if postgres_url:
            urls["postgres"] = postgres_url
        report = benchmark(Path.cwd(), urls, dup_share)
    write_report(out, report)
    for name, run in report["runs"].items():
        console.print(f"{name}: {run['events_per_s']} events/s" + (f", copy recall {run['copy_recall_at_near_min_chars']} (≥ near_min_chars), originals linked {run['originals_linked']}" if "copy_recall" in run else ""))


@bench_app.command("model")
@cli_errors
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

    ms = settings().model
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
    write_report(out, report)


@bench_app.command("pipeline")
@cli_errors
def bench_pipeline(
    events: Annotated[int, typer.Option(help="Events of the throughput phase (the three channels in turn, real texts).")] = 20_000,
    load_share: Annotated[float, typer.Option(help="Offered load of the latency phase, as a share of the measured maximum.")] = 0.5,
    latency_seconds: Annotated[float, typer.Option(help="Length of the paced latency phase.")] = 60.0,
    model_texts: Annotated[Optional[int], typer.Option(help="Time the model alone on this many of the texts (default: all).")] = None,
    profile_enricher: Annotated[Optional[Path], typer.Option(help="Run the enricher under py-spy and write its raw (collapsed) stacks here.")] = None,
    seed: Annotated[int, typer.Option(help="Shuffles the texts.")] = 18,
    out: Annotated[Path, typer.Option(help="Where to write the JSON report.")] = Path("benchmarks/pipeline.json"),
) -> None:
    """End to end: N events through the broker and every stage (one process each) against the model's own limit; latency at half load."""
    from pipelines.bench.pipeline import PipelineBenchOptions, run_pipeline_benchmark

    if events < 1 or not 0 < load_share <= 1:
        raise ValueError("--events must be positive and --load-share in (0, 1]")
    options = PipelineBenchOptions(events=events, load_share=load_share, latency_seconds=latency_seconds,
                                   model_texts=model_texts, profile_enricher=profile_enricher, seed=seed)
    write_report(out, run_pipeline_benchmark(settings(), options, log=lambda m: console.print(m)))
