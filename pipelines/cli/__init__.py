"""The ``feedback-miner`` command line: the root app adds each command group's own Typer app."""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from pipelines.cli.alerts import alerts_app
from pipelines.cli.bench import bench_app
from pipelines.cli.common import state
from pipelines.cli.corrections import corrections_app
from pipelines.cli.model import model_app, model_group
from pipelines.cli.serve import serve_app
from pipelines.cli.stream import stream_app
from pipelines.cli.themes import digest_app, themes_app
from pipelines.cli.topics import topics_app
from pipelines.cli.up import up_app
from topics.settings import ENV_PREFIX, Settings

app = typer.Typer(
    name="feedback-miner",
    help="Mine Chinese customer feedback: normalise, classify, cluster themes, alert.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# Groups without a name add their commands at the top level.
for commands in (stream_app, digest_app, model_app, corrections_app, up_app):
    app.add_typer(commands)
app.add_typer(topics_app, name="topics")
app.add_typer(themes_app, name="themes")
app.add_typer(alerts_app, name="alerts")
app.add_typer(serve_app, name="serve")
app.add_typer(bench_app, name="bench")
app.add_typer(model_group, name="model")


def _reflowed(doc: str) -> str:
    """A docstring with each paragraph on one line: Typer's rich help keeps the line breaks of every
    paragraph after the first, and then wraps again at the terminal width (ragged lines)."""
    return "\n\n".join(" ".join(paragraph.split("\n")) for paragraph in doc.split("\n\n"))


def _reflow_help(typer_app: typer.Typer) -> None:
    for info in typer_app.registered_commands:
        if info.help is None and info.callback is not None and info.callback.__doc__:
            info.help = _reflowed(inspect.getdoc(info.callback) or "")
    for group in typer_app.registered_groups:
        _reflow_help(group.typer_instance)


_reflow_help(app)


@app.callback()
def main(
    config: Annotated[Optional[Path], typer.Option(help="Settings file (TOML/JSON/YAML); env vars still win.")] = None,
    log_level: Annotated[Optional[str], typer.Option(help="Log level, e.g. INFO or DEBUG.")] = None,
) -> None:
    from consumers.logging_setup import configure_logging

    state.log_level_given = log_level is not None
    if config is not None:
        os.environ[f"{ENV_PREFIX}CONFIG"] = str(config)
    runtime = Settings().runtime
    configure_logging(log_level or runtime.log_level, runtime.log_format)
