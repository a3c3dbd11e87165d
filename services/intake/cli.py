"""`countermand directive ...`: issue, lift, list and show directives through intake's HTTP API."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import httpx
import typer
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from services.intake.request import DirectiveRequest, Problem, problems_of

DEFAULT_URL = "http://127.0.0.1:8080"
app = typer.Typer(help="Directives: issue, amend, lift, list and show (through intake).", no_args_is_help=True)
out = Console()
err = Console(stderr=True, soft_wrap=True)
UrlOption = typer.Option(None, "--url", help="Intake's base URL (default: COUNTERMAND_INTAKE_URL or "
                                             f"{DEFAULT_URL}).")


class _DirectiveLoader(yaml.SafeLoader):
    """YAML 1.1 without yes/no/on/off booleans: country code NO (Norway) must stay a string."""


_DirectiveLoader.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_DirectiveLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


class FileProblem(Exception):
    """A directive file that cannot be read or parsed."""


def load_directive_file(path: Path) -> Any:
    """The file's content as data: YAML or JSON by extension, else by the first character."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FileProblem(f"cannot read {path}: {exc}") from exc
    as_json = path.suffix.lower() == ".json" or (
        path.suffix.lower() not in (".yaml", ".yml") and text.lstrip().startswith("{"))
    return _parse_json(text, path) if as_json else _parse_yaml(text, path)


def _parse_json(text: str, path: Path) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise FileProblem(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc


def _parse_yaml(text: str, path: Path) -> Any:
    try:
        return yaml.load(text, Loader=_DirectiveLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise FileProblem(f"{path} is not valid YAML: {problem}{where}") from exc


def validate_directive(data: Any) -> DirectiveRequest:
    """The request model for the file's data, or typer.Exit after printing every problem."""
    if not isinstance(data, dict):
        _fail(f"a directive file must hold a mapping of fields, not {type(data).__name__}")
    try:
        return DirectiveRequest.model_validate(data)
    except ValidationError as exc:
        _print_problems("the directive is invalid; nothing was sent", problems_of(exc))
        raise typer.Exit(2) from exc


@app.command("issue")
def issue(file: Path = typer.Argument(..., help="Directive file (YAML or JSON)."), url: str = UrlOption) -> None:
    """Issue a directive from a file, or amend it if its id was issued before."""
    try:
        data = load_directive_file(file)
    except FileProblem as exc:
        _fail(f"{exc}; nothing was sent")
    request = validate_directive(data)
    body = _call("POST", url, "/directives", json=request.model_dump(mode="json"))
    out.print(f"[green]accepted[/green] {escape(body['directive_id'])} revision {body['revision']} "
              f"(event {body['event_id']})")


@app.command("lift")
def lift(directive_id: str = typer.Argument(..., help="Id of the directive to lift."),
         reason: str = typer.Option("", "--reason", help="Why it is lifted."), url: str = UrlOption) -> None:
    """Lift an issued directive."""
    body = _call("POST", url, f"/directives/{directive_id}/lift", json={"reason": reason})
    out.print(f"[green]lifted[/green] {escape(body['directive_id'])} at revision {body['revision']} "
              f"(event {body['event_id']})")


@app.command("list")
def list_directives(url: str = UrlOption) -> None:
    """List every directive intake knows."""
    table = Table("id", "revision", "state", "title", title="directives")
    for row in _call("GET", url, "/directives"):
        style = "red" if row["state"] == "lifted" else "green"
        table.add_row(escape(row["directive_id"]), str(row["revision"]), f"[{style}]{row['state']}[/{style}]",
                      escape(row["title"]))
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


def _call(method: str, url: str | None, path: str, **kwargs: Any) -> Any:
    base = _base_url(url)
    try:
        response = httpx.request(method, base + path, timeout=30.0, **kwargs)
    except httpx.ConnectError as exc:
        _fail(f"cannot reach intake at {base} ({exc}); is it running? Set --url or COUNTERMAND_INTAKE_URL.")
    except httpx.HTTPError as exc:
        _fail(f"request to intake at {base} failed: {exc!r}")
    if response.is_success:
        return response.json()
    _report_http_error(response)
    raise typer.Exit(1)


def _report_http_error(response: httpx.Response) -> None:
    try:
        body = response.json()
    except ValueError:
        body = {"error": response.text[:500]}
    message = body.get("error") if isinstance(body, dict) else None
    found = [Problem(**p) for p in body.get("problems", [])] if isinstance(body, dict) else []
    _print_problems(f"intake refused ({response.status_code}): {message or response.reason_phrase}", found)


def _print_problems(headline: str, found: list[Problem]) -> None:
    err.print(f"[red]error:[/red] {escape(headline)}", highlight=False)
    for problem in found:
        err.print(f"  - [bold]{escape(problem.field)}[/bold]: {escape(problem.message)}", highlight=False)


def _fail(message: str) -> None:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    raise typer.Exit(1)
