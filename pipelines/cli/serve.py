"""``feedback-miner serve ingest``: the HTTP ingest endpoint."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from pipelines.cli.common import cli_errors, console, require_broker, settings

serve_app = typer.Typer(help="Run long-lived HTTP services.", no_args_is_help=True)


@serve_app.command("ingest")
def serve_ingest(
    host: Annotated[Optional[str], typer.Option(help="Interface to bind (default: channels.ingest.host).")] = None,
    port: Annotated[Optional[int], typer.Option(help="Port to bind (default: channels.ingest.port).")] = None,
) -> None:
    """Accept raw feedback over HTTP (POST /v1/feedback, bearer token) and publish it to feedback.raw (acks=all)."""
    @cli_errors
    def run() -> None:
        import uvicorn

        from consumers.kafka_io import make_producer
        from pipelines.ingest_api import broker_readiness, create_app

        s = settings()
        if not any(token.get_secret_value() for token in s.channels.ingest.tokens):
            # Checked before connecting: a misconfigured server should fail at once.
            raise ValueError("no ingest token configured (set FEEDBACK_MINER_CHANNELS__INGEST__TOKENS, a JSON list)")
        require_broker(s, "serve ingest")
        producer = make_producer(s)
        try:
            app = create_app(s, producer, broker_readiness(s))
            bind_host, bind_port = host or s.channels.ingest.host, port or s.channels.ingest.port
            console.print(f"ingest on http://{bind_host}:{bind_port}/v1/feedback (OpenAPI at /docs)")
            uvicorn.run(app, host=bind_host, port=bind_port, log_level="info")
        finally:
            producer.close()

    run()
