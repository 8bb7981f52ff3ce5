"""The ``feedback-miner bench`` command group.

Other modules add their own benchmarks here::

    from pipelines.bench_cli import bench_app

    @bench_app.command("themes")
    def bench_themes(...): ...

``pipelines.model_cli.register`` attaches ``bench_app`` to the main app (once).
"""

from __future__ import annotations

import typer

bench_app = typer.Typer(name="bench", help="Benchmarks (each writes a JSON report).", no_args_is_help=True)


def attach(app: typer.Typer) -> None:
    """Add the bench group to ``app`` unless it is already there."""
    for group in app.registered_groups:
        if group.typer_instance is bench_app:
            return
    app.add_typer(bench_app, name="bench")
