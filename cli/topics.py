"""`countermand topics ...`: create or update the catalogue's topics."""

from __future__ import annotations

import asyncio
import time

import typer
from rich.console import Console
from rich.table import Table

from shared.contracts.catalogue import AUDIT_HORIZON_DAYS
from shared.runtime.settings import kafka_settings
from shared.runtime.topics import apply_topics, missing_topics

app = typer.Typer(help="Kafka topics of the contract.", no_args_is_help=True)


@app.command("apply")
def apply(
    bootstrap: str = typer.Option(None, help="Bootstrap servers (default: COUNTERMAND_KAFKA_BOOTSTRAP)."),
    replication: int = typer.Option(1, min=1, help="Replication factor for topics created."),
    min_insync_replicas: int = typer.Option(
        None, min=1, help="Set min.insync.replicas on every topic (default: the broker's)."
    ),
    audit_horizon_days: int = typer.Option(
        AUDIT_HORIZON_DAYS,
        min=1,
        help="Days after an assessment during which the registry keeps every record it was computed from "
        "(min.compaction.lag.ms and delete.retention.ms of the compacted registry topic).",
    ),
) -> None:
    """Create missing topics and align partitions and configs with the catalogue (idempotent)."""
    if min_insync_replicas is not None and min_insync_replicas > replication:
        raise typer.BadParameter(
            f"{min_insync_replicas} exceeds --replication {replication}", param_hint="--min-insync-replicas"
        )
    settings = kafka_settings(bootstrap)
    servers = settings.bootstrap
    try:
        changes = asyncio.run(
            apply_topics(
                settings,
                replication=replication,
                min_insync_replicas=min_insync_replicas,
                audit_horizon_days=audit_horizon_days,
            )
        )
    except Exception as exc:  # connection refused, authorisation, ...
        Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] could not apply topics on {servers}: {exc}")
        raise typer.Exit(1) from exc
    table = Table("topic", "action", title=f"topics on {servers}")
    for change in changes:
        table.add_row(change.name, change.action)
    Console().print(table)


@app.command("wait")
def wait(
    bootstrap: str = typer.Option(None, help="Bootstrap servers (default: COUNTERMAND_KAFKA_BOOTSTRAP)."),
    timeout: float = typer.Option(300.0, min=0, help="Seconds to wait before giving up."),
    interval: float = typer.Option(2.0, min=0.1, help="Seconds between two checks."),
) -> None:
    """Wait until every catalogue topic exists (a start-up gate for services; creates nothing)."""
    settings = kafka_settings(bootstrap)
    servers = settings.bootstrap
    deadline = time.monotonic() + timeout
    while True:
        try:
            missing = asyncio.run(missing_topics(settings))
        except Exception as exc:  # broker not reachable yet: keep waiting
            missing = [f"(broker unreachable: {exc})"]
        if not missing:
            Console().print(f"every catalogue topic exists on {servers}")
            return
        if time.monotonic() >= deadline:
            Console(stderr=True, soft_wrap=True).print(
                f"[red]error:[/red] still missing on {servers} after {timeout:.0f}s: {', '.join(missing)}"
            )
            raise typer.Exit(1)
        time.sleep(interval)
