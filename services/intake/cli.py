"""`countermand directive ...`: issue, lift, list and show directives through intake's HTTP API."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from shared.runtime.directive_files import fail, print_refusal, read_directive

DEFAULT_URL = "http://127.0.0.1:8080"
ATTEMPTS = 5  # a write is sent at most this often, always under the same Idempotency-Key
BACKOFF_S = (0.5, 1.0, 2.0, 4.0)
app = typer.Typer(help="Directives: issue, amend, lift, list and show (through intake).", no_args_is_help=True)
out = Console()
err = Console(stderr=True, soft_wrap=True)
UrlOption = typer.Option(None, "--url", help=f"Intake's base URL (default: COUNTERMAND_INTAKE_URL or {DEFAULT_URL}).")


@app.command("issue")
def issue(file: Path = typer.Argument(..., help="Directive file (YAML or JSON)."), url: str = UrlOption) -> None:
    """Issue a directive from a file, or amend it if its id was issued before."""
    request = read_directive(file, "nothing was sent", err)
    body = _call("POST", url, "/directives", json=request.model_dump(mode="json"), idempotent=True)
    if body.get("unchanged"):
        out.print(
            f"[yellow]unchanged[/yellow] {escape(body['directive_id'])} already says this at revision "
            f"{body['revision']} (event {body['event_id']})"
        )
        return
    out.print(
        f"[green]accepted[/green] {escape(body['directive_id'])} revision {body['revision']} (event {body['event_id']})"
    )


@app.command("lift")
def lift(
    directive_id: str = typer.Argument(..., help="Id of the directive to lift."),
    reason: str = typer.Option("", "--reason", help="Why it is lifted."),
    url: str = UrlOption,
) -> None:
    """Lift an issued directive."""
    body = _call("POST", url, f"/directives/{directive_id}/lift", json={"reason": reason}, idempotent=True)
    out.print(
        f"[green]lifted[/green] {escape(body['directive_id'])} at revision {body['revision']} "
        f"(event {body['event_id']})"
    )


@app.command("list")
def list_directives(url: str = UrlOption) -> None:
    """List every directive intake knows."""
    table = Table("id", "revision", "state", "title", title="directives")
    for row in _call("GET", url, "/directives"):
        style = "red" if row["state"] == "lifted" else "green"
        table.add_row(
            escape(row["directive_id"]),
            str(row["revision"]),
            f"[{style}]{row['state']}[/{style}]",
            escape(row["title"]),
        )
    out.print(table)


@app.command("show")
def show(directive_id: str = typer.Argument(..., help="Id of the directive."), url: str = UrlOption) -> None:
    """Show one directive with its latest scope."""
    body = _call("GET", url, f"/directives/{directive_id}")
    out.print(f"[bold]{escape(body['directive_id'])}[/bold] revision {body['revision']} ({body['state']})")
    out.print(f"title: {escape(body['title'])}")
    out.print(f"authority: {escape(body['authority'] or '-')}")
    if body.get("lift_reason"):
        out.print(f"lift reason: {escape(body['lift_reason'])}")
    out.print_json(data=body.get("scope"))


def _base_url(url: str | None) -> str:
    return (url or os.environ.get("COUNTERMAND_INTAKE_URL") or DEFAULT_URL).rstrip("/")


def _call(method: str, url: str | None, path: str, idempotent: bool = False, **kwargs: Any) -> Any:
    base = _base_url(url)
    try:
        with httpx.Client(base_url=base, timeout=30.0) as client:
            if idempotent:
                response = send_idempotently(client, method, path, **kwargs)
            else:
                response = client.request(method, path, **kwargs)
    except httpx.ConnectError as exc:
        fail(err, f"cannot reach intake at {base} ({exc}); is it running? Set --url or COUNTERMAND_INTAKE_URL.")
    except httpx.HTTPError as exc:
        fail(err, f"request to intake at {base} failed: {exc!r}")
    if response.is_success:
        return response.json()
    print_refusal(err, "intake", response)
    raise typer.Exit(1)


def send_idempotently(
    client: httpx.Client,
    method: str,
    path: str,
    attempts: int = ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
    **kwargs: Any,
) -> httpx.Response:
    """Send a write under one fresh Idempotency-Key, again on a timeout, a lost connection or a 503: intake
    answers a repeat with the first answer, so a retry never issues twice. The last failure is raised."""
    headers = {**kwargs.pop("headers", {}), "Idempotency-Key": uuid.uuid4().hex}
    for attempt in range(1, attempts + 1):
        last = attempt == attempts
        try:
            response = client.request(method, path, headers=headers, **kwargs)
        except httpx.TransportError:  # connect, read and write errors and timeouts
            if last:
                raise
        else:
            if response.status_code != 503 or last:
                return response
        sleep(BACKOFF_S[min(attempt - 1, len(BACKOFF_S) - 1)])
    raise AssertionError("unreachable")
