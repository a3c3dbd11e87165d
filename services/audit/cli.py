"""`countermand audit ...`: read the ledger (report, verify, replay). Read-only: publishes nothing."""

from __future__ import annotations

import base64
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from services.audit import checkpoint_cli
from services.audit.chain import Entry
from services.audit.forgery import Signatures
from services.audit.ledger import Ledger, LedgerMissing
from services.audit.record import parsed
from services.audit.settings import AuditSettings
from services.audit.timeline import events_of, summary, time_of, timeline
from shared.runtime.signing import KeySet, Signer

app = typer.Typer(help="The audit ledger: directive reports, chain verification, replay.", no_args_is_help=True)
LEDGER_HELP = "Ledger file (default: COUNTERMAND_AUDIT_STATE_DIR/audit/ledger.sqlite)."
app.command("checkpoints")(checkpoint_cli.checkpoints)
app.command("verify")(checkpoint_cli.verify)
app.command("prove")(checkpoint_cli.prove)
app.command("consistency")(checkpoint_cli.consistency)


@app.command("keygen")
def keygen(
    folder: Path = typer.Argument(..., help="Where to write audit.pem (private, 0600) and audit.jwks.json."),
    key_id: str = typer.Option("audit-1", help="Key id published with each signed tree head."),
    if_missing: bool = typer.Option(False, "--if-missing", help="Do nothing when audit.pem already exists."),
) -> None:
    """Generate the audit's Ed25519 tree-head signing key and its public JWK set."""
    private, public = folder / "audit.pem", folder / "audit.jwks.json"
    if private.exists():
        if if_missing:
            out().print(f"{private} exists: kept")
            return
        err().print(f"[red]error:[/red] {private} exists; refusing to overwrite a signing key")
        raise typer.Exit(2)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        signer = Signer.generate(key_id)
        private.touch(mode=0o600)
        private.write_bytes(signer.pem())
        public.write_text(KeySet([signer.public()]).to_json())
    except OSError as exc:
        err().print(f"[red]error:[/red] cannot write the key to {folder}: {exc}")
        raise typer.Exit(2) from exc
    out().print(f"wrote {private} (key id {key_id}) and {public}")


def record_signatures(options: list[str] | None = None) -> Signatures:
    """The key sets records are checked against (settings, then TOPIC=FILE options); exit 2 on a bad one."""
    try:
        return checkpoint_cli.record_signatures(options)
    except checkpoint_cli.Refused as exc:
        raise checkpoint_cli.fail(exc) from exc


def out() -> Console:
    return Console()


def err() -> Console:
    return Console(stderr=True, soft_wrap=True)


def _open(path: Path | None) -> Ledger:
    where = path or AuditSettings().ledger_path
    try:
        store = Ledger(where, read_only=True)
    except LedgerMissing as exc:
        err().print(f"[red]error:[/red] ledger: {exc}")
        raise typer.Exit(2) from exc
    try:
        store.head()
    except sqlite3.DatabaseError as exc:
        store.close()
        err().print(f"[red]error:[/red] ledger: {where} is not an audit ledger ({exc})")
        raise typer.Exit(2) from exc
    return store


def _directive_entries(ledger: Ledger, directive_id: str) -> list[Entry]:
    entries = ledger.entries_of(directive_id)
    if not entries:
        err().print(f"[red]error:[/red] directive_id: no recorded event for directive {directive_id!r}")
        raise typer.Exit(1)
    return entries


@app.command("timeline")
def report(
    directive_id: str = typer.Argument(..., help="Directive id."),
    ledger: Path = typer.Option(None, "--ledger", help=LEDGER_HELP),
) -> None:
    """The directive's timeline: one line per event, repeated notices aggregated."""
    store = _open(ledger)
    try:
        lines = timeline(_directive_entries(store, directive_id), directive_id, record_signatures())
    finally:
        store.close()
    table = Table("time", "topic", "event", "summary", title=f"directive {directive_id}")
    for line in lines:
        table.add_row(_when(line.time), line.topic, line.event, line.summary)
    out().print(table)


@app.command("replay")
def replay(
    directive_id: str = typer.Argument(..., help="Directive id."),
    ledger: Path = typer.Option(None, "--ledger", help=LEDGER_HELP),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """Print the directive's recorded events in order. Read-only: nothing is published."""
    store = _open(ledger)
    try:
        entries = events_of(_directive_entries(store, directive_id), directive_id)
    finally:
        store.close()
    for entry in entries:
        if as_json:
            typer.echo(json.dumps(_as_json(entry), ensure_ascii=False))
        else:
            out().print(
                f"{entry.seq:>8}  {_when(time_of(entry))}  {entry.record.topic}  {summary(entry)}",
                highlight=False,
                soft_wrap=True,
            )


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def _as_json(entry: Entry) -> dict:
    record = entry.record
    document = parsed(record.value)
    return {
        "seq": entry.seq,
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "key": None if record.key is None else record.key.decode(errors="replace"),
        "type": entry.envelope.type,
        "event_id": entry.envelope.event_id,
        "hash": entry.hash,
        "value": document,  # null for a tombstone or a value that is not JSON (see value_b64)
        "value_b64": None if record.value is None or document is not None else base64.b64encode(record.value).decode(),
    }
