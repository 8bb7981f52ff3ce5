"""``feedback-miner serve ingest``: the HTTP ingest endpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

serve_app = typer.Typer(help="Run long-lived HTTP services.", no_args_is_help=True)


@serve_app.command("ingest")
def serve_ingest(
    host: Annotated[Optional[str], typer.Option(help="Interface to bind (default: channels.ingest.host).")] = None,
    port: Annotated[Optional[int], typer.Option(help="Port to bind (default: channels.ingest.port).")] = None,
) -> None:
    """Accept raw feedback over HTTP (POST /v1/feedback, bearer token) and publish it to feedback.raw (acks=all)."""
    from pipelines.cli import _require_broker, cli_errors, console, settings

    @cli_errors
    def run() -> None:
        import uvicorn

        from consumers.kafka_io import make_producer
        from pipelines.ingest_api import broker_readiness, create_app

        s = settings()
        if not any(token.get_secret_value() for token in s.channels.ingest.tokens):
            # Checked before connecting: a misconfigured server should fail at once.
            raise ValueError("no ingest token configured (set FEEDBACK_MINER_CHANNELS__INGEST__TOKENS, a JSON list)")
        _require_broker(s, "serve ingest")
        producer = make_producer(s)
        try:
            app = create_app(s, producer, broker_readiness(s))
            bind_host, bind_port = host or s.channels.ingest.host, port or s.channels.ingest.port
            console.print(f"ingest on http://{bind_host}:{bind_port}/v1/feedback (OpenAPI at /docs)")
            uvicorn.run(app, host=bind_host, port=bind_port, log_level="info")
        finally:
            producer.close()

    run()


def bench_normalizer(
    out: Annotated[Path, typer.Option(help="Where to write the JSON report.")] = Path("benchmarks/normalizer.json"),
    postgres_url: Annotated[Optional[str], typer.Option(help="Also measure the dedup index on this PostgreSQL URL (tables are created there).")] = None,
    dup_share: Annotated[float, typer.Option(help="Share of texts sent again with a small edit.")] = 0.3,
) -> None:
    """Normalizer throughput without and with the store-backed dedup index, and near-duplicate recall."""
    import json
    import tempfile

    from pipelines.cli import console
    from pipelines.normalizer_bench import benchmark

    with tempfile.TemporaryDirectory() as tmp:
        urls = {"sqlite": f"sqlite:///{tmp}/bench.db"}
        if postgres_url:
            urls["postgres"] = postgres_url
        report = benchmark(Path.cwd(), urls, dup_share)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    for name, run in report["runs"].items():
        console.print(f"{name}: {run['events_per_s']} events/s" + (f", copy recall {run['copy_recall_at_near_min_chars']} (≥ near_min_chars), originals linked {run['originals_linked']}" if "copy_recall" in run else ""))
    console.print(f"wrote {out}")


def register(app: typer.Typer) -> None:
    from pipelines.bench_cli import attach, bench_app

    app.add_typer(serve_app, name="serve")
    bench_app.command("normalizer")(bench_normalizer)
    attach(app)
