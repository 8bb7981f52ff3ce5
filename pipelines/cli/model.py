"""``feedback-miner train`` and ``feedback-miner eval`` (a stable interface: its last stdout line is one JSON object)."""

from __future__ import annotations

import typer

from pipelines.model_cli import eval_command, train_command

model_app = typer.Typer()
model_app.command("eval")(eval_command)
model_app.command("train")(train_command)
