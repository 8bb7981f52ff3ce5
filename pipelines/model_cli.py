"""Model commands: train, eval, bench model (filled in by the model issue)."""

import typer


def register(app: typer.Typer) -> None:
    pass
