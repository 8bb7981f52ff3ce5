"""``feedback-miner topics …``: provision and inspect the pipeline's topics."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from pipelines.cli.common import cli_errors, console, require_broker, settings

topics_app = typer.Typer(help="Provision and inspect the pipeline's topics.", no_args_is_help=True)


def print_topic_statuses(statuses) -> None:
    table = Table("topic", "status", "partitions", "drift")
    colours = {"created": "green", "exists": "cyan", "drift": "yellow"}
    for st in statuses:
        table.add_row(st.name, f"[{colours[st.action]}]{st.action}[/]", str(st.partitions or ""), "; ".join(st.drift))
    console.print(table)


@topics_app.command("create")
@cli_errors
def topics_create() -> None:
    """Create missing topics (idempotent); report drift; never delete."""
    from topics.admin import ensure_topics

    s = settings()
    require_broker(s, "topics create")
    statuses = ensure_topics(s)
    print_topic_statuses(statuses)
    if any(st.action == "drift" for st in statuses):
        raise typer.Exit(1)


@topics_app.command("describe")
@cli_errors
def topics_describe() -> None:
    """Show the pipeline's topics as the broker has them, beside their specs."""
    from topics.admin import admin_client, describe_topics, drift_of, specs_for

    s = settings()
    require_broker(s, "topics describe")
    specs = specs_for(s)
    admin = admin_client(s)
    try:
        existing = describe_topics(admin, [spec.name for spec in specs])
    finally:
        admin.close()
    table = Table("topic", "partitions", "replication", "retention (days)", "drift / status", "purpose")
    for spec in specs:
        actual = existing.get(spec.name)
        state = "[red]missing[/]" if actual is None else ("; ".join(drift_of(spec, actual)) or "[green]ok[/]")
        table.add_row(
            spec.name,
            str(actual.partitions if actual else spec.partitions),
            str(actual.replication_factor if actual else spec.replication_factor),
            f"{spec.retention_ms / 86_400_000:g}",
            state,
            spec.description,
        )
    console.print(table)


@topics_app.command("schemas")
@cli_errors
def topics_schemas(out: Annotated[Path, typer.Option(help="Directory for the JSON Schema files.")] = Path("topics/jsonschema")) -> None:
    """Export the event schemas as JSON Schema files for integrators."""
    from topics.jsonschema_export import write_json_schemas

    for path in write_json_schemas(out):
        console.print(f"wrote {path}")


@topics_app.command("manifest")
@cli_errors
def topics_manifest(
    partitions: Annotated[int, typer.Option(help="Partitions of the per-message topics.")] = 6,
    replication: Annotated[int, typer.Option(help="Replication factor.")] = 3,
    cluster: Annotated[str, typer.Option(help="Strimzi cluster name.")] = "feedback-kafka",
) -> None:
    """Print the topics as Strimzi KafkaTopic manifests (deploy/k8s/topics.yaml)."""
    from topics.manifests import strimzi_topics
    from topics.specs import topic_specs

    print(strimzi_topics(topic_specs(partitions, replication), cluster), end="")
