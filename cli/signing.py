"""`countermand signing ...`: the Ed25519 keys services sign their records with (directives, assessments, commands)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from shared.runtime.record_signing import RECORD_SIGNERS, key_files, make_record_key

app = typer.Typer(help="Record signing keys: one per signing service, and the public key sets verifiers trust.")


@app.command("keygen")
def keygen(
    folder: Path = typer.Argument(..., help="Writes SERVICE/records.pem (private, 0600) and public/*.jwks.json."),
    service: list[str] = typer.Option(
        list(RECORD_SIGNERS), "--service", help="A service to make a key for (repeat); default: every signer."
    ),
    key_id_suffix: str = typer.Option("1", help="Key ids are SERVICE-SUFFIX (the COUNTERMAND_SIGNING_KEY_ID)."),
    if_missing: bool = typer.Option(False, "--if-missing", help="Keep a service's key that exists; no error."),
) -> None:
    """Generate each signing service's record key (never overwriting one) and its public JWK set."""
    out, err = Console(), Console(stderr=True)
    existing = [name for name in service if key_files(folder, name)[0].exists()]
    if existing and not if_missing:
        err.print(f"[red]error:[/red] keys exist for {', '.join(existing)}; refusing to overwrite a signing key")
        raise typer.Exit(2)
    for name in service:
        try:
            made = make_record_key(folder, name, f"{name}-{key_id_suffix}")
        except OSError as exc:
            err.print(f"[red]error:[/red] cannot write the key of {name} to {folder}: {exc}")
            raise typer.Exit(2) from exc
        private, public = key_files(folder, name)
        out.print(f"{name}: {'wrote' if made else 'kept'} {private} and {public}")
