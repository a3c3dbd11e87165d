"""`countermand impact ...` and `countermand directive preview`: recompute a published digest; dry-run a directive."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

import httpx
import typer
from aiokafka.structs import ConsumerRecord
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from services.impact.reproduce import reproduce
from shared.contracts.catalogue import IMPACT
from shared.contracts.impact import ImpactAssessed
from shared.runtime.directive_files import fail, print_refusal, read_directive
from shared.runtime.kafka import records_to_end
from shared.runtime.settings import KafkaSettings, kafka_settings

DEFAULT_URL = "http://127.0.0.1:8090"
app = typer.Typer(help="Impact: recompute published digests, dry-run directives and lifts.", no_args_is_help=True)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
UrlOption = typer.Option(
    None, "--impact-url", help=f"The impact service's base URL (default: COUNTERMAND_IMPACT_URL or {DEFAULT_URL})."
)
BootstrapOption = typer.Option(
    None, "--bootstrap", help="Kafka bootstrap servers (default: COUNTERMAND_KAFKA_BOOTSTRAP)."
)


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


async def published_assessment(
    settings: KafkaSettings, directive_id: str, revision: int | None = None
) -> ImpactAssessed:
    """The restrict assessment of a directive (the latest revision, or the one asked) from compliance.impact.v1."""
    found: dict[int, ImpactAssessed] = {}
    async for record in records_to_end(settings, IMPACT, "impact-reproduce"):
        head = _head(record, directive_id)
        if head is not None:
            found.setdefault(head.revision, head)
    wanted = revision if revision is not None else max(found, default=None)
    if wanted not in found:
        raise LookupError(
            f"directive_id: no ImpactAssessed (restrict) for {directive_id!r}"
            + (f" revision {revision}" if revision is not None else "")
            + f" on {IMPACT.name}"
        )
    return found[wanted]


def _head(record: ConsumerRecord, directive_id: str) -> ImpactAssessed | None:
    try:
        event = IMPACT.adapter.validate_json(record.value)
    except ValueError:
        return None
    if isinstance(event, ImpactAssessed) and event.directive_id == directive_id and event.action == "restrict":
        return event
    return None


async def check(settings: KafkaSettings, directive_id: str, revision: int | None = None) -> Reproduction:
    """Recompute the published assessment from the registry as of its recorded offsets."""
    published = await published_assessment(settings, directive_id, revision)
    model_digests, digest = await reproduce(settings, published.registry_offsets, published.scope)
    return Reproduction(published, model_digests, digest)


@app.command("reproduce")
def reproduce_command(
    directive_id: str = typer.Argument(..., help="Id of the directive."),
    revision: int = typer.Option(None, "--revision", help="Revision (default: the latest assessed)."),
    bootstrap: str = BootstrapOption,
) -> None:
    """Recompute a directive's affected set from the registry at its recorded offsets; exit 1 on a mismatch."""
    try:
        result = asyncio.run(check(kafka_settings(bootstrap), directive_id, revision))
    except (LookupError, ValueError) as exc:
        fail(err, str(exc))
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


@app.command("preview")
def preview(
    file: Path = typer.Argument(..., help="Directive file (YAML or JSON), as for `directive issue`."),
    impact_url: str = UrlOption,
) -> None:
    """Dry run: what issuing (or amending) the directive in FILE would affect now. Publishes nothing."""
    request = read_directive(file, "nothing was previewed", err)
    _show(_call(impact_url, "/directives/preview", request.model_dump(mode="json")), "would be denied")


@app.command("lift-preview")
def lift_preview(
    directive_id: str = typer.Argument(..., help="Id of an active directive."), impact_url: str = UrlOption
) -> None:
    """Dry run: what lifting an active directive would restore, net of the other active directives."""
    _show(_call(impact_url, f"/directives/{directive_id}/lift/preview", None), "would be restored")


def _show(body: dict, verb: str) -> None:
    losing = body.get("losing_by_model")  # covered and entitled: who actually loses (or regains) the model
    title = f"{escape(body['directive_id'])}: {verb}"
    models = Table(
        "model",
        "users covered",
        *(["users losing it" if "denied" in verb else "users regaining it"] if losing is not None else []),
        title=title,
    )
    for model, count in sorted(body["affected_by_model"].items()):
        models.add_row(model, f"{count:,}", *([f"{losing.get(model, 0):,}"] if losing is not None else []))
    distinct = (
        [f"[bold]{body['losing_users']:,}"] if losing is not None and body.get("losing_users") is not None else []
    )
    models.add_row("[bold]distinct users", f"[bold]{body['affected_users']:,}", *distinct)
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
        token = os.environ.get("COUNTERMAND_TOKEN")
        headers = {"Authorization": f"Bearer {token.strip()}"} if token else None
        response = httpx.post(base + path, json=body, headers=headers, timeout=120.0)
    except httpx.HTTPError as exc:
        fail(
            err, f"cannot reach impact at {base} ({exc!r}); is it running? Set --impact-url or COUNTERMAND_IMPACT_URL."
        )
    if response.is_success:
        return response.json()
    print_refusal(err, "impact", response)
    raise typer.Exit(1)
