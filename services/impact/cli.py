"""`countermand impact ...` and `countermand directive preview`: recompute a published digest; dry-run a directive."""

from __future__ import annotations

import asyncio
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import typer
import yaml
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from services.impact.reproduce import reproduce
from services.impact.request import PreviewRequest, Problem, problems_of
from shared.contracts.catalogue import IMPACT
from shared.contracts.impact import ImpactAssessed
from shared.runtime.settings import KafkaSettings

DEFAULT_URL = "http://127.0.0.1:8090"
app = typer.Typer(help="Impact: recompute published digests, dry-run directives and lifts.", no_args_is_help=True)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
UrlOption = typer.Option(None, "--impact-url", help="The impact service's base URL (default: COUNTERMAND_IMPACT_URL "
                                                    f"or {DEFAULT_URL}).")
BootstrapOption = typer.Option(None, "--bootstrap",
                               help="Kafka bootstrap servers (default: COUNTERMAND_KAFKA_BOOTSTRAP).")


# --- reproduce -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reproduction:
    """A published assessment and what the registry at its offsets gives again."""

    published: ImpactAssessed
    model_digests: dict[str, str]
    digest: str

    @property
    def matches(self) -> bool:
        return self.digest == self.published.digest and self.model_digests == self.published.model_digests


async def published_assessment(bootstrap: str, directive_id: str, revision: int | None = None) -> ImpactAssessed:
    """The restrict assessment of a directive (the latest revision, or the one asked) from compliance.impact.v1."""
    found: dict[int, ImpactAssessed] = {}
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        partitions = [TopicPartition(IMPACT.name, p) for p in range(IMPACT.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        while any([await consumer.position(tp) < end for tp, end in ends.items()]):
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for head in _heads(records, directive_id):
                    found.setdefault(head.revision, head)
    finally:
        await consumer.stop()
    wanted = revision if revision is not None else max(found, default=None)
    if wanted not in found:
        raise LookupError(f"directive_id: no ImpactAssessed (restrict) for {directive_id!r}"
                          + (f" revision {revision}" if revision is not None else "") + f" on {IMPACT.name}")
    return found[wanted]


def _heads(records: list, directive_id: str) -> list[ImpactAssessed]:
    heads = []
    for record in records:
        try:
            event = IMPACT.adapter.validate_json(record.value)
        except ValueError:
            continue
        if isinstance(event, ImpactAssessed) and event.directive_id == directive_id and event.action == "restrict":
            heads.append(event)
    return heads


async def check(bootstrap: str, directive_id: str, revision: int | None = None) -> Reproduction:
    """Recompute the published assessment from the registry as of its recorded offsets."""
    published = await published_assessment(bootstrap, directive_id, revision)
    model_digests, digest = await reproduce(bootstrap, published.registry_offsets, published.scope)
    return Reproduction(published, model_digests, digest)


@app.command("reproduce")
def reproduce_command(directive_id: str = typer.Argument(..., help="Id of the directive."),
                      revision: int = typer.Option(None, "--revision", help="Revision (default: the latest assessed)."),
                      bootstrap: str = BootstrapOption) -> None:
    """Recompute a directive's affected set from the registry at its recorded offsets; exit 1 on a mismatch."""
    try:
        result = asyncio.run(check(bootstrap or KafkaSettings().bootstrap, directive_id, revision))
    except (LookupError, ValueError) as exc:
        _fail(str(exc))
    table = Table("model", "published", "recomputed", "", title=f"{directive_id} revision {result.published.revision}")
    for model in sorted(set(result.published.model_digests) | set(result.model_digests)):
        published, again = result.published.model_digests.get(model, "-"), result.model_digests.get(model, "-")
        table.add_row(model, published[:16] + "…", again[:16] + "…", _verdict(published == again))
    out.print(table)
    out.print(f"published digest  {result.published.digest}", highlight=False)
    out.print(f"recomputed digest {result.digest}", highlight=False)
    out.print(f"registry offsets {dict(sorted(result.published.registry_offsets.items()))}")
    if not result.matches:
        err.print("[red]mismatch:[/red] the recomputed affected set differs from the published one")
        raise typer.Exit(1)
    out.print("[green]match[/green]")


def _verdict(same: bool) -> str:
    return "[green]=[/green]" if same else "[red]≠[/red]"


# --- preview ---------------------------------------------------------------------------------------------------


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
    try:
        return json.loads(text) if as_json else yaml.load(text, Loader=_DirectiveLoader)  # noqa: S506 (a SafeLoader)
    except json.JSONDecodeError as exc:
        raise FileProblem(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except yaml.YAMLError as exc:
        raise FileProblem(f"{path} is not valid YAML: {exc}") from exc


def validate_directive(data: Any) -> PreviewRequest:
    """The request for the file's data, or typer.Exit(2) after printing every problem with its field."""
    if not isinstance(data, dict):
        _fail(f"a directive file must hold a mapping of fields, not {type(data).__name__}")
    try:
        return PreviewRequest.model_validate(data)
    except ValidationError as exc:
        _print_problems("the directive is invalid; nothing was previewed", problems_of(exc))
        raise typer.Exit(2) from exc


@app.command("preview")
def preview(file: Path = typer.Argument(..., help="Directive file (YAML or JSON), as for `directive issue`."),
            impact_url: str = UrlOption) -> None:
    """Dry run: what issuing (or amending) the directive in FILE would affect now. Publishes nothing."""
    try:
        data = load_directive_file(file)
    except FileProblem as exc:
        _fail(str(exc))
    request = validate_directive(data)
    _show(_call(impact_url, "/directives/preview", request.model_dump(mode="json")), "would be denied")


@app.command("lift-preview")
def lift_preview(directive_id: str = typer.Argument(..., help="Id of an active directive."),
                 impact_url: str = UrlOption) -> None:
    """Dry run: what lifting an active directive would restore, net of the other active directives."""
    _show(_call(impact_url, f"/directives/{directive_id}/lift/preview", None), "would be restored")


def _show(body: dict, verb: str) -> None:
    models = Table("model", "users", title=f"{escape(body['directive_id'])}: {verb}")
    for model, count in sorted(body["affected_by_model"].items()):
        models.add_row(model, f"{count:,}")
    models.add_row("[bold]distinct users", f"[bold]{body['affected_users']:,}")
    models.add_row("only because an attribute is unknown", f"{body['unknown_only']:,}")
    out.print(models)
    if body.get("amends_revision") is not None:
        diff = Table("model", "added", "removed", title=f"difference from active revision {body['amends_revision']}")
        for model in sorted(body["added_by_model"]):
            diff.add_row(model, f"{body['added_by_model'][model]:,}", f"{body['removed_by_model'][model]:,}")
        out.print(diff)
    countries = Table("residence", "users", title="by country of residence (?? unknown)")
    for country, count in sorted(body["by_country"].items(), key=lambda kv: (-kv[1], kv[0])):
        countries.add_row(country, f"{count:,}")
    kinds = Table("account type", "users", title="by account type")
    for kind, count in sorted(body["by_account_type"].items()):
        kinds.add_row(kind, f"{count:,}")
    out.print(countries, kinds)
    out.print(f"sample of user ids: {', '.join(map(str, body['sample'])) or '-'}")


def _call(url: str | None, path: str, body: dict | None) -> dict:
    base = (url or os.environ.get("COUNTERMAND_IMPACT_URL") or DEFAULT_URL).rstrip("/")
    try:
        response = httpx.post(base + path, json=body, timeout=120.0)
    except httpx.HTTPError as exc:
        _fail(f"cannot reach impact at {base} ({exc!r}); is it running? Set --impact-url or COUNTERMAND_IMPACT_URL.")
    if response.is_success:
        return response.json()
    try:
        answer = response.json()
    except ValueError:
        answer = {"error": response.text[:500]}
    found = [Problem(**p) for p in answer.get("problems", [])] if isinstance(answer, dict) else []
    _print_problems(f"impact refused ({response.status_code}): {answer.get('error', response.reason_phrase)}", found)
    raise typer.Exit(1)


def _print_problems(headline: str, found: list[Problem]) -> None:
    err.print(f"[red]error:[/red] {escape(headline)}", highlight=False)
    for problem in found:
        err.print(f"  - [bold]{escape(problem.field)}[/bold]: {escape(problem.message)}", highlight=False)


def _fail(message: str) -> None:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    raise typer.Exit(1)
