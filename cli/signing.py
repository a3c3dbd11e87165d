"""`countermand signing ...`: the Ed25519 keys services sign their records with (directives, assessments, commands)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from shared.runtime.record_signing import (
    RECORD_SIGNERS,
    agent_key_set_file,
    agent_signer,
    key_files,
    make_agent_keys,
    make_record_key,
)

app = typer.Typer(help="Record signing keys: one per signing service, and the public key sets verifiers trust.")


@app.command("keygen")
def keygen(
    folder: Path = typer.Argument(..., help="Writes SERVICE/records.pem (private, 0600) and public/*.jwks.json."),
    service: list[str] = typer.Option(
        list(RECORD_SIGNERS), "--service", help="A service to make a key for (repeat); default: every signer."
    ),
    agent: list[str] = typer.Option(
        [], "--agent", help="A serving cluster whose agent signs its acks and heartbeats (repeat): agent-CLUSTER."
    ),
    key_id_suffix: str = typer.Option("1", help="Key ids are SERVICE-SUFFIX (the COUNTERMAND_SIGNING_KEY_ID)."),
    if_missing: bool = typer.Option(False, "--if-missing", help="Keep a service's key that exists; no error."),
) -> None:
    """Generate each signing service's record key (never overwriting one) and its public JWK set."""
    out, err = Console(), Console(stderr=True, soft_wrap=True)
    existing = [name for name in [*service, *map(agent_signer, agent)] if key_files(folder, name)[0].exists()]
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
    if agent:
        try:
            made_for = make_agent_keys(folder, agent, key_id_suffix)
        except OSError as exc:
            err.print(f"[red]error:[/red] cannot write the agents' keys to {folder}: {exc}")
            raise typer.Exit(2) from exc
        for cluster in agent:
            private, _ = key_files(folder, agent_signer(cluster))
            out.print(f"{agent_signer(cluster)}: {'wrote' if cluster in made_for else 'kept'} {private}")
        out.print(f"agents: wrote {agent_key_set_file(folder)} (each key naming its cluster, for enforcement)")
