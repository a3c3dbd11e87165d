"""For the CLIs: directive files (YAML or JSON) read into a DirectiveRequest; problems printed with their fields."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, NoReturn

import httpx
import typer
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from shared.contracts.directives import DirectiveRequest
from shared.contracts.limits import MAX_BODY_BYTES, MAX_JSON_DEPTH
from shared.runtime.problems import Problem, problems_of
from shared.runtime.request_body import BadBody, decode_utf8, parse_json


class _DirectiveLoader(yaml.SafeLoader):
    """YAML 1.1 without yes/no/on/off booleans: country code NO (Norway) must stay a string; nested at most
    MAX_JSON_DEPTH levels, refused as soon as a deeper node opens (deep nesting is slow to compose, not only
    too deep to read)."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_JSON_DEPTH:
                raise _TooDeep
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _TooDeep(Exception):
    """A YAML document nested deeper than a directive may be."""


_DirectiveLoader.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_DirectiveLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


class FileProblem(Exception):
    """A directive file that cannot be read or parsed."""


def read_directive(path: Path, consequence: str, err: Console) -> DirectiveRequest:
    """The request in a directive file, or typer.Exit after printing what is wrong (1: the file, 2: its fields)."""
    try:
        data = load_directive_file(path)
    except FileProblem as exc:
        fail(err, f"{exc}; {consequence}")
    return validate_directive(data, consequence, err)


def load_directive_file(path: Path) -> Any:
    """The file's content as data: YAML or JSON by extension, else by the first character.

    Held to the limits intake holds a body to (size, UTF-8 with or without a BOM, nesting, numbers);
    CRLF line endings read like LF.
    """
    try:
        if path.stat().st_size > MAX_BODY_BYTES:
            raise FileProblem(f"{path} is larger than {MAX_BODY_BYTES} bytes (MAX_BODY_BYTES)")
        text = decode_utf8(path.read_bytes(), str(path))
    except OSError as exc:
        raise FileProblem(f"cannot read {path}: {exc}") from exc
    except BadBody as exc:
        raise FileProblem(str(exc)) from exc
    as_json = path.suffix.lower() == ".json" or (
        path.suffix.lower() not in (".yaml", ".yml") and text.lstrip().startswith("{")
    )
    return _parse_json(text, path) if as_json else _parse_yaml(text, path)


def validate_directive(
    data: Any, consequence: str = "nothing was sent", err: Console | None = None
) -> DirectiveRequest:
    """The request model for the file's data, or typer.Exit after printing every problem."""
    err = err or Console(stderr=True, soft_wrap=True)
    if not isinstance(data, dict):
        fail(err, f"a directive file must hold a mapping of fields, not {type(data).__name__}")
    try:
        return DirectiveRequest.model_validate(data)
    except ValidationError as exc:
        print_problems(err, f"the directive is invalid; {consequence}", problems_of(exc))
        raise typer.Exit(2) from exc


def print_problems(err: Console, headline: str, found: list[Problem]) -> None:
    """An error headline, then one line per problem naming its field."""
    err.print(f"[red]error:[/red] {escape(headline)}", highlight=False)
    for problem in found:
        err.print(f"  - [bold]{escape(problem.field)}[/bold]: {escape(problem.message)}", highlight=False)


def print_refusal(err: Console, service: str, response: httpx.Response) -> None:
    """A refused HTTP request: the service's error (a Failure body) and each problem it names."""
    try:
        body = response.json()
    except ValueError:
        body = {"error": response.text[:500]}
    body = body if isinstance(body, dict) else {}
    found = [Problem(**p) for p in body.get("problems", [])]
    print_problems(
        err, f"{service} refused ({response.status_code}): {body.get('error') or response.reason_phrase}", found
    )


def fail(err: Console, message: str) -> NoReturn:
    """Print an error and exit 1."""
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    raise typer.Exit(1)


def _parse_json(text: str, path: Path) -> Any:
    try:
        return parse_json(text, str(path))
    except BadBody as exc:
        cause = exc.__cause__
        if isinstance(cause, json.JSONDecodeError):
            raise FileProblem(
                f"{path} is not valid JSON: {cause.msg} at line {cause.lineno} column {cause.colno}"
            ) from exc
        raise FileProblem(str(exc)) from exc


def flow_depth(text: str) -> int:
    """The deepest nesting of YAML flow collections (`[`, `{`) outside quotes and comments, in one pass.

    PyYAML's scanner takes time quadratic in the number of open flow collections before it yields a node, so
    this bound is checked first: a megabyte of `[` would otherwise keep it busy for hours.
    """
    depth = deepest = 0
    quote = ""
    comment = False
    previous = "\n"
    for char in text:
        if comment:
            comment = char != "\n"
        elif quote:
            if char == quote and not (quote == '"' and previous == "\\"):
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and previous in " \t\n":
            comment = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth = max(depth - 1, 0)
        previous = "" if previous == "\\" and char == "\\" else char
    return deepest


def _parse_yaml(text: str, path: Path) -> Any:
    try:
        if flow_depth(text) > MAX_JSON_DEPTH:
            raise _TooDeep
        return yaml.load(text, Loader=_DirectiveLoader)  # noqa: S506 (a SafeLoader)
    except (RecursionError, _TooDeep) as exc:
        raise FileProblem(
            f"{path} is nested too deep to read (a directive nests at most {MAX_JSON_DEPTH} levels, MAX_JSON_DEPTH)"
        ) from exc
    except ValueError as exc:  # e.g. an integer beyond Python's 4300-digit conversion limit
        raise FileProblem(f"{path} holds a value that cannot be read: {exc}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise FileProblem(f"{path} is not valid YAML: {problem}{where}") from exc
