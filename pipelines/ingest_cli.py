"""``feedback-miner serve ingest``: the HTTP ingest endpoint."""

from __future__ import annotations

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


def register(app: typer.Typer) -> None:
    app.add_typer(serve_app, name="serve")
