"""What every command shares: settings, consoles, one-line errors, the broker check."""

from __future__ import annotations

import functools

import typer
from rich.console import Console
from rich.markup import escape

from topics.settings import ENV_PREFIX, Settings

console = Console()
err_console = Console(stderr=True)


class _State:
    # Whether --log-level was given: `run` keeps the log quiet unless it was.
    log_level_given = False


state = _State()


def settings() -> Settings:
    return Settings()


def cli_errors(func):
    """Turn expected failures into one red line and a non-zero exit code."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from kafka.errors import KafkaError
        from pydantic import ValidationError

        from topics.admin import BrokerUnreachable
        from topics.embedded import BrokerStartError

        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except BrokerUnreachable as exc:
            err_console.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
            raise typer.Exit(3) from None
        except (KafkaError, BrokerStartError) as exc:
            err_console.print(f"[red]error:[/] {escape(_kafka_error_line(exc))}", soft_wrap=True)
            raise typer.Exit(3) from None
        except ValidationError as exc:
            err_console.print(f"[red]error:[/] invalid configuration: {escape(str(exc.errors()[0]['loc']))}: {escape(exc.errors()[0]['msg'])}")
            raise typer.Exit(2) from None
        except (ValueError, FileNotFoundError, OSError) as exc:
            err_console.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


def _kafka_error_line(exc: BaseException) -> str:
    """'Kafka: <class>: <what happened>', naming the class once (kafka-python's texts often start with it)."""
    name, text = type(exc).__name__, str(exc).strip()
    if not text.startswith(name):
        text = f"{name}: {text}" if text else name
    return f"Kafka: {text}"


def require_broker(s: Settings, command: str) -> None:
    """A configured and answering broker, checked before anything slow starts."""
    from topics.admin import check_broker

    if not s.kafka.bootstrap_servers:
        raise ValueError(
            f"'{command}' needs a running broker: set {ENV_PREFIX}KAFKA__BOOTSTRAP_SERVERS "
            "(or start one with 'feedback-miner broker')"
        )
    check_broker(s)
