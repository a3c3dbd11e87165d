"""`countermand acls ...`: the Kafka ACLs of every role, generated from the topic catalogue (shared.runtime.acls)."""

from __future__ import annotations

import asyncio

import typer
from rich.console import Console
from rich.table import Table

from shared.runtime.acl_requests import apply_acls
from shared.runtime.acls import bindings, principals
from shared.runtime.settings import kafka_settings

app = typer.Typer(help="Kafka principals and their ACLs.", no_args_is_help=True)
AgentsOption = typer.Option(
    ["us-east", "eu-west", "ap-south"], "--agent", help="A serving cluster whose agent gets a principal (repeat)."
)


@app.command("show")
def show(agents: list[str] = AgentsOption) -> None:
    """Print every principal's ACLs (what `apply` makes the broker hold); reads no broker."""
    table = Table("principal", "operation", "resource", "name", title="Kafka ACLs (ALLOW, any host)")
    for binding in bindings(agents):
        table.add_row(f"User:{binding.principal}", binding.operation, binding.resource, binding.name)
    Console().print(table)


@app.command("strimzi")
def strimzi(agents: list[str] = AgentsOption) -> None:
    """Print Strimzi resources for Kafka inside Kubernetes: a three-node KRaft cluster, the catalogue's topics and
    one SCRAM KafkaUser per principal with its ACLs (deploy/k8s/strimzi/kafka.yaml is this output)."""
    from cli.strimzi import render

    typer.echo(render(agents), nl=False)


@app.command("apply")
def apply(
    agents: list[str] = AgentsOption,
    bootstrap: str = typer.Option(None, help="Bootstrap servers (default: COUNTERMAND_KAFKA_BOOTSTRAP)."),
) -> None:
    """Make the broker's ACLs of these principals exactly the generated ones (idempotent). Run it as the super
    user (COUNTERMAND_KAFKA_SASL_USERNAME=admin): no other principal may change ACLs."""
    settings = kafka_settings(bootstrap)
    try:
        changes = asyncio.run(apply_acls(settings, bindings(agents), principals(agents)))
    except Exception as exc:  # connection refused, authentication, authorisation, ...
        Console(stderr=True, soft_wrap=True).print(
            f"[red]error:[/red] could not apply ACLs on {settings.bootstrap}: {exc}"
        )
        raise typer.Exit(1) from exc
    for entry in changes.created:
        Console().print(f"created {entry}")
    for entry in changes.deleted:
        Console().print(f"deleted {entry}")
    Console().print(
        f"ACLs on {settings.bootstrap}: {len(changes.created)} created, {len(changes.deleted)} deleted, "
        f"{changes.kept} unchanged"
    )
