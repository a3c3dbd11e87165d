"""The typer command `countermand registry import FILE`: options, progress, the error table and the summary.

Exit codes: 0 everything imported; 1 some rows refused (the good ones imported); 2 the file cannot be
imported (nothing was); 3 Kafka failed (re-running is safe: upserts are idempotent).
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from cli.imports import importer
from cli.imports.columns import MappingError, mapping_help, parse_mapping
from cli.imports.problems import ImportFileError, RowError, write_errors
from shared.contracts.catalogue import USERS
from shared.runtime.settings import kafka_settings

out = Console()
err = Console(stderr=True, soft_wrap=True)
HELP = (
    f"Import a provider's user base (CSV, JSON Lines or Parquet, from the extension) into {USERS.name}. "
    "Columns (rename with --map field=column): " + mapping_help() + ". Lists in CSV are separated by ';' "
    "or '|'. Exit 0: all imported; 1: some rows refused, the rest imported; 2: nothing imported (file "
    "error); 3: Kafka failed. See docs/registry-import.md."
)


def import_command(
    file: Path = typer.Argument(..., help="The file: .csv, .jsonl/.ndjson or .parquet."),
    map_: list[str] = typer.Option([], "--map", help="field=column, e.g. user_id=id (repeatable)."),
    snapshot: bool = typer.Option(
        False,
        help="The file is the whole user base: tombstone every user on the topic whose id the file does not have.",
    ),
    dry_run: bool = typer.Option(False, help="Validate and report what would be produced; produce nothing."),
    errors: Path = typer.Option(None, help="Write every refused value to this CSV (line, field, value, why)."),
    show: int = typer.Option(20, min=0, help="Refused values listed on screen."),
    as_of: datetime = typer.Option(
        None,
        help="When the records were true (default: the file's modification "
        "time); part of each record, so the same file gives the same values.",
    ),
    bootstrap: str = typer.Option(None, help="Bootstrap servers (default: COUNTERMAND_KAFKA_BOOTSTRAP)."),
    processes: int = typer.Option(
        None, min=1, max=2, help="Producer processes (default: 2 from 400,000 upserts on Linux with 2+ cores, else 1)."
    ),
) -> None:
    """Import users from FILE; refused rows are reported and the good ones imported."""
    started = time.perf_counter()
    try:
        plan = importer.prepare(file, parse_mapping(map_), importer.as_of(file, as_of))
    except (ImportFileError, MappingError) as exc:
        _fail(str(exc))
    settings = kafka_settings(bootstrap)
    if snapshot:
        if not len(plan.checked.upserts) + len(plan.checked.deletions):
            _fail(f"{file}: no valid rows; a snapshot of nothing would delete every user, refused")
        plan = _on_kafka(settings.bootstrap, importer.with_absent(plan, settings))
    _report_errors(plan.checked.errors, show, errors)
    if not dry_run:
        _on_kafka(settings.bootstrap, _produce(plan, settings, processes))
    _summary(plan, dry_run, time.perf_counter() - started)
    raise typer.Exit(1 if plan.checked.errors else 0)


async def _produce(plan: importer.Plan, settings, processes: int | None) -> int:
    columns = (TextColumn("producing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task("records", total=plan.records)
        return await importer.run(plan, settings, lambda done: bar.update(task, completed=done), processes=processes)


def _summary(plan: importer.Plan, dry_run: bool, seconds: float) -> None:
    checked = plan.checked
    verb = "would produce" if dry_run else "produced"
    rate = f", {plan.rows / seconds:,.0f} rows/s" if not dry_run and seconds > 0 else ""
    snapshot = f", {len(plan.absent):,} tombstones for users absent from the file" if len(plan.absent) else ""
    out.print(
        f"{plan.path} ({plan.kind}): {plan.rows:,} rows, {checked.refused_rows:,} refused; {verb} "
        f"{len(checked.upserts):,} upserts, {len(checked.deletions):,} deletions{snapshot} to {USERS.name}"
        f" in {seconds:.1f} s{rate}",
        soft_wrap=True,  # one line however long the path: scripts and logs read it whole
    )


def _report_errors(errors: list[RowError], show: int, path: Path | None) -> None:
    if not errors:
        return
    if show:
        table = Table(
            "line", "field", "value", "why", title=f"refused values (first {min(show, len(errors))} of {len(errors):,})"
        )
        for error in errors[:show]:
            table.add_row(str(error.line), error.field, escape(error.value), escape(error.why))
        err.print(table)
    rows = len({error.line for error in errors})
    err.print(Text.assemble(("refused:", "yellow"), f" {rows:,} rows ({len(errors):,} values)"))
    if path is not None:
        err.print(f"every refused value written to {path} ({write_errors(path, errors):,} lines)")


def _fail(message: str) -> NoReturn:
    err.print(Text.assemble(("error:", "red"), " ", message))
    err.print("nothing was imported")
    raise typer.Exit(2)


def _on_kafka(servers: str, work):
    try:
        return asyncio.run(work)
    except Exception as exc:  # connection refused, timeouts, a topic missing
        err.print(Text.assemble(("error:", "red"), f" Kafka at {servers}: {type(exc).__name__}: {exc}"))
        err.print("re-running the import is safe: the same rows give the same records")
        raise typer.Exit(3) from exc
