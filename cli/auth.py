"""`countermand auth ...`: a local token issuer and gateway API keys, for `make run`, docker compose and play.

Production trusts the organisation's identity provider (COUNTERMAND_AUTH_JWKS_URL); this stands in for it.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from shared.runtime.auth import LocalIssuer, Role, create_local_identities, local_environment

app = typer.Typer(
    help="Local identities: a token issuer and gateway API keys (development only).", no_args_is_help=True
)
out = Console()
DEFAULT_DIR = Path(".run/auth")
DirOption = typer.Option(DEFAULT_DIR, "--dir", help="Folder holding the local issuer and the API keys.")


@app.command("init")
def init(folder: Path = DirOption) -> None:
    """Create a local token issuer and a gateway API key; prints the settings the services need."""
    issuer, presented = create_local_identities(folder)
    out.print(f"issuer key and JWK set written to {folder}/ (keep issuer-key.pem private)")
    out.print(f"gateway API key (shown once, send it as X-API-Key): {presented}")
    out.print("services read:")
    for name, value in local_environment(folder, issuer).items():
        out.print(f"  {name}={value}")


@app.command("token")
def token(
    subject: str = typer.Argument(..., help="Who the token names (its `sub`), e.g. alice@example.com."),
    roles: list[Role] = typer.Option(..., "--role", help="A role to grant (repeat for several)."),
    ttl_s: float = typer.Option(3600, "--ttl", help="Seconds until the token expires."),
    folder: Path = DirOption,
) -> None:
    """Print a token from the local issuer (use: export COUNTERMAND_TOKEN=$(countermand auth token ...))."""
    if not (folder / "issuer.json").exists():
        typer.echo(f"no local issuer in {folder}: run `countermand auth init --dir {folder}` first", err=True)
        raise typer.Exit(1)
    typer.echo(LocalIssuer.load(folder).mint(subject, roles, ttl_s=ttl_s))
