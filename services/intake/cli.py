"""`countermand directive ...`: propose, approve, reject, lift, list and show directives through intake's HTTP API.

Each call carries a bearer token (--token, or COUNTERMAND_TOKEN); `countermand auth token` mints one locally.
"""

from __future__ import annotations

import os
import re
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

from shared.contracts.directives import PROPOSAL_ID_PATTERN
from shared.runtime.directive_files import fail, print_refusal, read_directive

DEFAULT_URL = "http://127.0.0.1:8080"
ATTEMPTS = 5  # a write is sent at most this often, always under the same Idempotency-Key
BACKOFF_S = (0.5, 1.0, 2.0, 4.0)
app = typer.Typer(
    help="Directives: propose, approve, reject, lift, list and show (through intake).", no_args_is_help=True
)
out = Console()
err = Console(stderr=True, soft_wrap=True)
UrlOption = typer.Option(None, "--url", help=f"Intake's base URL (default: COUNTERMAND_INTAKE_URL or {DEFAULT_URL}).")


TokenOption = typer.Option(
    None, "--token", help="Bearer token to call intake with (default: COUNTERMAND_TOKEN).", show_default=False
)
EmergencyOption = typer.Option(
    None,
    "--emergency",
    help="Emergency role only: act alone, at once, with this reason on record (no approval).",
    show_default=False,
)


@app.command("propose")
def propose(
    file: Path = typer.Argument(..., help="Directive file (YAML or JSON)."),
    url: str = UrlOption,
    token: str = TokenOption,
) -> None:
    """Propose a directive from a file (or an amendment, if its id was issued before); someone else approves it."""
    _issue(file, url, token, None)


@app.command("issue")
def issue(
    file: Path = typer.Argument(..., help="Directive file (YAML or JSON)."),
    url: str = UrlOption,
    token: str = TokenOption,
    emergency: str = EmergencyOption,
) -> None:
    """Propose a directive from a file, as `propose` does; with --emergency REASON, issue it at once, alone."""
    _issue(file, url, token, emergency)


def _issue(file: Path, url: str | None, token: str | None, emergency: str | None) -> None:
    request = read_directive(file, "nothing was sent", err)
    params = {"emergency_reason": emergency} if emergency is not None else None
    body = _call(
        "POST", url, "/directives", token, json=request.model_dump(mode="json"), params=params, idempotent=True
    )
    _print_outcome(body)


@app.command("approve")
def approve(
    proposal_id: str = typer.Argument(
        ..., help="Id of the proposal (see `countermand directive pending`), or of a directive with one open proposal."
    ),
    reason: str = typer.Option("", "--reason", help="A note recorded with the approval."),
    url: str = UrlOption,
    token: str = TokenOption,
) -> None:
    """Approve someone else's proposal; the last approval it needs issues (or lifts) the directive."""
    if not re.fullmatch(PROPOSAL_ID_PATTERN, proposal_id):  # a directive id: its one open proposal (at most one)
        rows = _call("GET", url, "/proposals", token)
        open_for = [row["proposal_id"] for row in rows if row["directive_id"] == proposal_id]
        proposal_id = open_for[0] if len(open_for) == 1 else proposal_id
    body = _call("POST", url, f"/proposals/{proposal_id}/approve", token, json={"reason": reason}, idempotent=True)
    _print_outcome(body)


@app.command("reject")
def reject(
    proposal_id: str = typer.Argument(..., help="Id of the proposal."),
    reason: str = typer.Option(..., "--reason", help="Why it is rejected (required, recorded)."),
    url: str = UrlOption,
    token: str = TokenOption,
) -> None:
    """Reject a proposal (an approver), or withdraw your own."""
    body = _call("POST", url, f"/proposals/{proposal_id}/reject", token, json={"reason": reason}, idempotent=True)
    out.print(f"[red]rejected[/red] {escape(body['proposal_id'])} for {escape(body['directive_id'])}")


@app.command("pending")
def pending(url: str = UrlOption, token: str = TokenOption) -> None:
    """List the proposals awaiting approval."""
    table = Table(
        "proposal", "directive", "action", "revision", "proposed by", "approved by", "expires", title="pending"
    )
    for row in _call("GET", url, "/proposals", token):
        table.add_row(
            escape(row["proposal_id"]),
            escape(row["directive_id"]),
            row["action"],
            str(row["revision"]),
            escape(row["proposed_by"]),
            escape(", ".join(row["approved_by"]) or "-") + f" ({len(row['approved_by'])}/{row['approvals_needed']})",
            row["expires_at"],
        )
    out.print(table)


@app.command("lift")
def lift(
    directive_id: str = typer.Argument(..., help="Id of the directive to lift."),
    reason: str = typer.Option("", "--reason", help="Why it is lifted."),
    url: str = UrlOption,
    token: str = TokenOption,
    emergency: str = EmergencyOption,
) -> None:
    """Propose lifting an issued directive (someone else approves it); with --emergency REASON, lift it at once."""
    params = {"emergency_reason": emergency} if emergency is not None else None
    body = _call(
        "POST", url, f"/directives/{directive_id}/lift", token, json={"reason": reason}, params=params, idempotent=True
    )
    _print_outcome(body)


def _print_outcome(body: dict[str, Any]) -> None:
    directive = f"{escape(body['directive_id'])} revision {body['revision']}"
    if body.get("unchanged"):
        what = "proposal " + escape(body["proposal_id"]) if body["state"] == "proposed" else f"event {body['event_id']}"
        out.print(f"[yellow]unchanged[/yellow] {directive} already says this ({what})")
    elif body["state"] == "proposed":
        approvals = f"{len(body['approved_by'])}/{body['approvals_needed']} approvals"
        out.print(
            f"[cyan]proposed[/cyan] {directive} as {escape(body['proposal_id'])} by {escape(body['proposed_by'])} "
            f"({approvals}; expires {body['expires_at']}): another person approves it with "
            f"`countermand directive approve {escape(body['proposal_id'])}`"
        )
    else:
        who = (
            f"emergency action by {escape(body['proposed_by'] or '-')}"
            if body["emergency"]
            else f"proposed by {escape(body['proposed_by'] or '-')}, approved by "
            f"{escape(', '.join(body['approved_by']) or '-')}"
        )
        out.print(f"[green]{body['state']}[/green] {directive} ({who}; event {body['event_id']})")


@app.command("list")
def list_directives(url: str = UrlOption, token: str = TokenOption) -> None:
    """List every directive intake knows."""
    table = Table("id", "revision", "state", "title", title="directives")
    for row in _call("GET", url, "/directives", token):
        style = "red" if row["state"] == "lifted" else "green"
        table.add_row(
            escape(row["directive_id"]),
            str(row["revision"]),
            f"[{style}]{row['state']}[/{style}]",
            escape(row["title"]),
        )
    out.print(table)


@app.command("show")
def show(
    directive_id: str = typer.Argument(..., help="Id of the directive."), url: str = UrlOption, token: str = TokenOption
) -> None:
    """Show one directive with its latest scope and who put it in force."""
    body = _call("GET", url, f"/directives/{directive_id}", token)
    out.print(f"[bold]{escape(body['directive_id'])}[/bold] revision {body['revision']} ({body['state']})")
    out.print(f"title: {escape(body['title'])}")
    out.print(f"authority: {escape(body['authority'] or '-')}")
    if body.get("proposed_by"):
        approved = ", ".join(body.get("approved_by") or []) or "-"
        out.print(f"proposed by: {escape(body['proposed_by'])}; approved by: {escape(approved)}")
    if body.get("emergency"):
        out.print(f"[red]emergency action alone[/red]: {escape(body['emergency_reason'])}")
    if body.get("lift_reason"):
        out.print(f"lift reason: {escape(body['lift_reason'])}")
    out.print_json(data=body.get("scope"))


def _base_url(url: str | None) -> str:
    return (url or os.environ.get("COUNTERMAND_INTAKE_URL") or DEFAULT_URL).rstrip("/")


def _call(method: str, url: str | None, path: str, token: str | None, idempotent: bool = False, **kwargs: Any) -> Any:
    base = _base_url(url)
    token = token or os.environ.get("COUNTERMAND_TOKEN")
    if token:
        kwargs["headers"] = {"Authorization": f"Bearer {token.strip()}"}
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
