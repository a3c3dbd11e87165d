"""`countermand topics ...`: create or update the catalogue's topics."""

from __future__ import annotations

import asyncio

import typer
from rich.console import Console
from rich.table import Table

from shared.runtime.settings import KafkaSettings
from shared.runtime.topics import apply_topics

app = typer.Typer(help="Kafka topics of the contract.", no_args_is_help=True)


@app.command("apply")
def apply(
    bootstrap: str = typer.Option(None, help="Bootstrap servers (default: COUNTERMAND_KAFKA_BOOTSTRAP)."),
    replication: int = typer.Option(1, min=1, help="Replication factor for topics created."),
) -> None:
    """Create missing topics and align partitions and configs with the catalogue (idempotent)."""
    servers = bootstrap or KafkaSettings().bootstrap
    try:
        changes = asyncio.run(apply_topics(servers, replication=replication))
    except Exception as exc:  # connection refused, authorisation, ...
        Console(stderr=True).print(f"[red]error:[/red] could not apply topics on {servers}: {exc}")
        raise typer.Exit(1) from exc
    table = Table("topic", "action", title=f"topics on {servers}")
    for change in changes:
        table.add_row(change.name, change.action)
    Console().print(table)
