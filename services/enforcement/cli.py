"""`countermand status [ID]`: enforcement status read back from compliance.enforcement.v1, beside each revision's
users covered and users losing access per model (the ImpactAssessed heads on compliance.impact.v1)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import typer
from rich.console import Console
from rich.table import Table

from shared.contracts.catalogue import ENFORCEMENT, IMPACT
from shared.contracts.enforcement import ClusterProgress
from shared.contracts.impact import AssessmentKey, ImpactAssessed
from shared.runtime.kafka import TopicMismatch, partitions_of, records_to_end
from shared.runtime.settings import KafkaSettings, kafka_settings

app = typer.Typer(help="Enforcement status of directives.")
COLOURS = {"applied": "green", "pending": "yellow", "overdue": "red", "failed": "red", "enforced": "green"}


@dataclass
class RevisionStatus:
    """The latest known status of one directive revision and action."""

    directive_id: str
    revision: int
    action: str
    clusters: dict[str, ClusterProgress] = field(default_factory=dict)
    enforced: bool = False
    overdue: list[str] = field(default_factory=list)
    deadline: datetime | None = None
    latency_s: dict[str, float] = field(default_factory=dict)
    covered: dict[str, int] = field(default_factory=dict)  # model -> users covered (denied)
    losing: dict[str, int] | None = None  # model -> covered users entitled to it; None: not reported

    @property
    def state(self) -> str:
        states = {p.state for p in self.clusters.values()}
        if self.enforced and states <= {"applied"}:
            return "enforced"
        for worst in ("overdue", "failed", "pending"):
            if worst in states:
                return worst
        return "enforced" if self.enforced else "pending"


def fold(events: list, assessments: Sequence[ImpactAssessed] = ()) -> dict[AssessmentKey, RevisionStatus]:
    """Latest status per directive revision and action, from the topic's events in order, with the counts of
    the revisions' assessments."""
    statuses: dict[AssessmentKey, RevisionStatus] = {}
    for assessed in assessments:
        status = statuses.setdefault(AssessmentKey.of(assessed), RevisionStatus(*AssessmentKey.of(assessed)))
        status.covered, status.losing = dict(assessed.affected_by_model), assessed.losing_by_model
    for event in events:
        key = AssessmentKey.of(event)
        status = statuses.setdefault(key, RevisionStatus(*key))
        if event.type == "EnforcementProgressed":
            status.clusters, status.deadline = dict(event.clusters), event.deadline
        elif event.type == "DirectiveEnforced":
            status.enforced, status.clusters = True, {**status.clusters, **event.clusters}
            status.latency_s = dict(event.ack_latency_s)
        else:
            status.overdue = list(event.overdue_clusters)
    return statuses


async def read_status_events(settings: KafkaSettings) -> list:
    """Every event on compliance.enforcement.v1 from the beginning up to the current end (no group)."""
    await partitions_of(settings, ENFORCEMENT, "status")  # a missing topic is a clear error, not an empty read
    events = [_parse(record.value) async for record in records_to_end(settings, ENFORCEMENT, "status")]
    return [e for e in events if e is not None]


async def read_assessments(settings: KafkaSettings) -> list[ImpactAssessed]:
    """Every ImpactAssessed head on compliance.impact.v1 up to the current end (chunks and deltas skipped unparsed)."""
    heads = []
    async for record in records_to_end(settings, IMPACT, "status-impact"):
        if record.value and b"ImpactAssessed" in record.value[:1000]:
            head = _parse_with(IMPACT.adapter, record.value)
            if isinstance(head, ImpactAssessed):
                heads.append(head)
    return heads


async def read_status(settings: KafkaSettings) -> dict[AssessmentKey, RevisionStatus]:
    """Both topics read back and folded."""
    events = await read_status_events(settings)
    with contextlib.suppress(TopicMismatch):  # enforcement status alone is still worth showing
        await partitions_of(settings, IMPACT, "status-impact")
        return fold(events, await read_assessments(settings))
    return fold(events)


def _parse_with(adapter, value: bytes):
    try:
        return adapter.validate_json(value)
    except ValueError:
        return None


def _parse(value: bytes | None):
    try:
        return ENFORCEMENT.adapter.validate_json(value) if value else None
    except ValueError:
        return None  # not ours to judge here: the status shows what it can read


def _when(moment: datetime | None) -> str:
    return moment.strftime("%H:%M:%S") if moment else "-"


def _latency(status: RevisionStatus, cluster: str, progress: ClusterProgress) -> str:
    if cluster in status.latency_s:
        return f"{status.latency_s[cluster]:.2f}s"
    if progress.acked_at is None or progress.sent_at is None:
        return "-"
    return f"{max((progress.acked_at - progress.sent_at).total_seconds(), 0):.2f}s"


def revision_table(status: RevisionStatus) -> Table:
    colour = COLOURS.get(status.state, "white")
    table = Table(
        "cluster",
        "state",
        "attempts",
        "sent",
        "acked",
        "latency",
        "reason",
        title=f"{status.directive_id} r{status.revision} {status.action}: "
        f"[{colour}]{status.state}[/{colour}] (deadline {_when(status.deadline)})",
    )
    for cluster, progress in sorted(status.clusters.items()):
        table.add_row(
            cluster,
            f"[{COLOURS[progress.state]}]{progress.state}[/]",
            str(progress.attempts),
            _when(progress.sent_at),
            _when(progress.acked_at),
            _latency(status, cluster, progress),
            progress.reason or "",
        )
    return table


def _count(counts: dict[str, int] | None, model: str) -> str:
    return f"{counts[model]:,}" if counts is not None and model in counts else "n/a"


def models_table(status: RevisionStatus) -> Table:
    """Per model: users the revision covers (denied) and, of those, users losing access (entitled to it)."""
    verb = "regaining" if status.action == "lift" else "losing"
    table = Table(
        "model",
        "users covered",
        f"users {verb} access",
        title=f"{status.directive_id} r{status.revision} {status.action}: users per model",
    )
    for model in sorted(status.covered):
        table.add_row(model, f"{status.covered[model]:,}", _count(status.losing, model))
    return table


def _per_model(status: RevisionStatus) -> str:
    """ "model covered/losing" per model, for the one-line overview."""
    return ", ".join(f"{m} {status.covered[m]:,}/{_count(status.losing, m)}" for m in sorted(status.covered))


def overview_table(statuses: dict[AssessmentKey, RevisionStatus]) -> Table:
    latest: dict[str, RevisionStatus] = {}
    for status in statuses.values():
        latest[status.directive_id] = status  # events arrive in order per directive: the last one wins
    table = Table(
        "directive",
        "revision",
        "action",
        "state",
        "clusters applied",
        "covered/losing per model",
        title="enforcement",
    )
    for directive_id, status in sorted(latest.items()):
        applied = sum(p.state == "applied" for p in status.clusters.values())
        colour = COLOURS.get(status.state, "white")
        table.add_row(
            directive_id,
            str(status.revision),
            status.action,
            f"[{colour}]{status.state}[/]",
            f"{applied}/{len(status.clusters)}",
            _per_model(status),
        )
    return table


@app.command("status")
def status(
    directive_id: str = typer.Argument(None, help="Directive id; all directives when omitted."),
    bootstrap: str = typer.Option(None, help="Bootstrap servers (default: COUNTERMAND_KAFKA_BOOTSTRAP)."),
) -> None:
    """Show each cluster's enforcement state for a directive, or one line per directive."""
    settings = kafka_settings(bootstrap)
    servers = settings.bootstrap
    try:
        statuses = asyncio.run(read_status(settings))
    except Exception as exc:  # connection refused, unknown topic, ...
        Console(stderr=True, soft_wrap=True).print(
            f"[red]error:[/red] could not read {ENFORCEMENT.name} on {servers}: {exc}"
        )
        raise typer.Exit(1) from exc
    console = Console()
    if directive_id is None:
        console.print(overview_table(statuses))
        return
    mine = [s for k, s in sorted(statuses.items()) if k[0] == directive_id]
    if not mine:
        Console(stderr=True, soft_wrap=True).print(
            f"[red]error:[/red] directive_id: no enforcement status for {directive_id!r}"
        )
        raise typer.Exit(1)
    for revision in mine:
        console.print(revision_table(revision))
        if revision.covered:
            console.print(models_table(revision))
