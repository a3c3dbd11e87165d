"""`countermand registry ...`: fill, change and describe the synthetic user registry."""

from __future__ import annotations

import asyncio
import time
from typing import Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from devtools.registry import loader
from devtools.registry.census import Census, census
from devtools.registry.population import PRODUCER, generate
from shared.contracts.catalogue import USERS
from shared.contracts.users import MAX_USER_ID, UserUpserted
from shared.runtime.settings import KafkaSettings

app = typer.Typer(
    help="Synthetic user registry (identity.users.v1) for demos, tests and benchmarks.", no_args_is_help=True
)
out = Console()
err = Console(stderr=True, soft_wrap=True)
UNKNOWN_WORDS = ("", "unknown", "null", "none")
# Ids are taken as text so that a negative id reaches validation (and is named) instead of being
# mistaken for an option.
ARGS_MAY_START_WITH_DASH = {"ignore_unknown_options": True}

BootstrapOption = typer.Option(None, help="Bootstrap servers (default: COUNTERMAND_KAFKA_BOOTSTRAP).")


@app.command("load")
def load(
    users: int = typer.Option(..., help="How many users to generate and produce."),
    seed: int = typer.Option(42, help="Random seed; the same seed gives the same population."),
    first_id: int = typer.Option(1, help="Id of the first user; ids are consecutive."),
    bootstrap: str = BootstrapOption,
) -> None:
    """Generate a population and produce every user to identity.users.v1."""
    pop = _or_exit(lambda: generate(users, seed, first_id))
    servers = bootstrap or KafkaSettings().bootstrap
    columns = (TextColumn("producing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=out, transient=True) as bar:
        task = bar.add_task("users", total=len(pop))
        started = time.perf_counter()
        done = _on_kafka(servers, loader.load(servers, pop, lambda n, _: bar.update(task, completed=n)))
        elapsed = max(time.perf_counter() - started, 1e-9)
    out.print(
        f"loaded {done:,} users (ids {first_id}..{first_id + done - 1}, seed {seed}) to {USERS.name} "
        f"on {servers} in {elapsed:.1f} s: {done / elapsed:,.0f} users/s"
    )


@app.command("set", context_settings=ARGS_MAY_START_WITH_DASH)
def set_user(
    user_id: str = typer.Argument(..., help="Numeric user id."),
    nationalities: str = typer.Option(..., help="Comma-separated ISO alpha-2 codes, or 'unknown'."),
    residence: str = typer.Option(..., help="ISO alpha-2 code of the country of residence, or 'unknown'."),
    account_type: str = typer.Option(..., help="consumer, enterprise_member or employee."),
    organisation: str = typer.Option(None, help="Organisation id, e.g. org-00042."),
    entitlements: str = typer.Option("", help="Comma-separated models, e.g. fable-5,mythos-5."),
    email: str = typer.Option(None, help="Contact address (default user<ID>@example.com)."),
    locale: str = typer.Option("en", help="Language for notices."),
    bootstrap: str = BootstrapOption,
) -> None:
    """Upsert one user's full record (validated first: nothing is sent on bad input)."""
    fields = {
        "producer": PRODUCER,
        "user_id": user_id,
        "email": email or f"user{user_id}@example.com",
        "nationalities": _codes_or_none(nationalities),
        "residence": _code_or_none(residence),
        "account_type": account_type,
        "organisation": organisation or None,
        "entitlements": _codes(entitlements),
        "locale": locale,
    }
    try:
        record = UserUpserted.model_validate(fields)
    except ValidationError as exc:
        _invalid(exc)
    servers = bootstrap or KafkaSettings().bootstrap
    _on_kafka(servers, loader.upsert(servers, record))
    out.print(f"upserted user {record.user_id} on {USERS.name}")


@app.command("delete", context_settings=ARGS_MAY_START_WITH_DASH)
def delete(
    user_id: str = typer.Argument(..., help="Numeric user id."),
    bootstrap: str = BootstrapOption,
) -> None:
    """Delete one user: a tombstone (null value) on the user's key."""
    number = int(user_id) if user_id.strip().isdigit() else -1
    if not 0 <= number <= MAX_USER_ID:
        _fail(f"user_id: must be a whole number in 0..{MAX_USER_ID}, got {user_id!r}")
    servers = bootstrap or KafkaSettings().bootstrap
    _on_kafka(servers, loader.delete(servers, number))
    out.print(f"deleted user {number} (tombstone on {USERS.name})")


@app.command("stats")
def stats(
    users: int = typer.Option(..., help="How many users to generate."),
    seed: int = typer.Option(42, help="Random seed."),
    first_id: int = typer.Option(1, help="Id of the first user."),
    top: int = typer.Option(15, min=1, help="Countries listed per table."),
) -> None:
    """Print the breakdown of the population `load` would produce (no Kafka)."""
    pop = _or_exit(lambda: generate(users, seed, first_id))
    _print_census(census(pop), top)


def _print_census(c: Census, top: int) -> None:
    summary = Table("measure", "users", "share", title=f"{c.users:,} users")
    rows = [(f"account: {name}", count) for name, count in c.account_types.items()] + [
        ("dual nationals", c.dual),
        ("  of which US + another", c.dual_with_us),
        ("nationality unknown", c.unknown_nationality),
        ("residence unknown", c.unknown_residence),
        ("living outside their nationalities", c.living_abroad),
        ("foreign nationals living in the US", c.foreign_nationals_in_us),
        ("employees without US nationality", c.employees_not_us),
    ]
    for label, count in rows:
        summary.add_row(label, f"{count:,}", _share(count, c.users))
    out.print(summary)
    for title, counts in (("nationality", c.nationalities), ("residence", c.residences)):
        table = Table(title, "users", "share", title=f"by {title}: top {top} of {len(counts)}")
        for code, count in list(counts.items())[:top]:
            table.add_row(code, f"{count:,}", _share(count, c.users))
        out.print(table)


def _share(count: int, total: int) -> str:
    return f"{100 * count / total:.2f}%" if total else "-"


def _codes(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _codes_or_none(text: str) -> list[str] | None:
    return None if text.strip().lower() in UNKNOWN_WORDS else _codes(text)


def _code_or_none(text: str) -> str | None:
    return None if text.strip().lower() in UNKNOWN_WORDS else text.strip()


def _invalid(exc: ValidationError) -> NoReturn:
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "record"
        _error(f"{field}: {error['msg']} (got {error.get('input')!r})")
    err.print("nothing was sent")
    raise typer.Exit(2)


def _fail(message: str) -> NoReturn:
    _error(message)
    err.print("nothing was sent")
    raise typer.Exit(2)


def _error(message: str) -> None:
    err.print(Text.assemble(("error:", "red"), " ", message))


def _or_exit(make: Any) -> Any:
    try:
        return make()
    except ValueError as exc:  # generate names the bad field
        _fail(str(exc))


def _on_kafka(servers: str, work: Any) -> Any:
    try:
        return asyncio.run(work)
    except Exception as exc:  # connection refused, timeouts, ...
        _error(f"Kafka at {servers}: {type(exc).__name__}: {exc}")
        raise typer.Exit(1) from exc
