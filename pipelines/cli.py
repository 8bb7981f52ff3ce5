"""The ``feedback-miner`` command line."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="feedback-miner",
    help="Mine Chinese customer feedback: normalise, classify, cluster themes, alert.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _register_commands() -> None:
    # Each command group lives in its own module and adds itself to ``app``.
    from pipelines import model_cli

    model_cli.register(app)


_register_commands()
