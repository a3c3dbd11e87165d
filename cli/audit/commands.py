"""`countermand audit report|explain|at`: read Kafka directly (own consumer, no group), strictly read-only."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from cli.audit.reading import read_evidence
from services.audit.answers import answer_json, explain_from_ledger
from services.audit.checkpoint_cli import Refused, exported_heads, open_ledger, public_keys
from services.audit.cli import record_signatures
from services.audit.evidence import Evidence
from services.audit.explain import at_moment, explain, moment
from services.audit.html import render_html
from services.audit.proofs import check_ledger
from services.audit.report import NOTICE_ACTION, NothingFound, build_report
from services.audit.report_model import CheckpointVerification, DirectiveReport, Lift, Revision
from services.audit.settings import AuditSettings
from services.impact.reproduce import reproduce
from shared.contracts.directives import DirectiveScope
from shared.runtime.settings import KafkaSettings, kafka_settings

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
BOOTSTRAP = typer.Option(None, "--bootstrap", help="Kafka bootstrap servers (default: COUNTERMAND_KAFKA_BOOTSTRAP).")
RECORD_KEYS = typer.Option(
    None,
    "--record-keys",
    help="TOPIC=JWKS: check that topic's records against these keys (repeatable; adds to "
    "COUNTERMAND_AUDIT_RECORD_KEYS). A record that fails is a forgery: reported, never used as evidence.",
)


def register(app: typer.Typer) -> None:
    """Add report, explain and at to `countermand audit`."""
    app.command("report")(report)
    app.command("explain")(explain_command)
    app.command("at")(at_command)


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


def _time(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        return moment(text)
    except ValueError as exc:
        raise _fail(f"{option}: {exc}", 2) from exc


# --- report ------------------------------------------------------------------------------------------------------


def report(
    directive_id: str = typer.Argument(..., help="Directive id."),
    since: str = typer.Option(None, "--from", help="Only events from this time (ISO 8601)."),
    until: str = typer.Option(None, "--to", help="Only events up to this time (ISO 8601)."),
    json_out: Path = typer.Option(None, "--json", help="Write the JSON report here (docs/schemas/audit-report.json)."),
    html_out: Path = typer.Option(None, "--html", help="Write the self-contained HTML report here."),
    ledger: Path = typer.Option(None, "--ledger", help="Also verify this ledger against the signed heads."),
    against: Path = typer.Option(
        None, "--against", help="Folder of exported heads (default: COUNTERMAND_AUDIT_EXPORT_DIR)."
    ),
    keys: Path = typer.Option(None, "--keys", help="JWK set of the audit's keys (default: DIR/keys.jwks.json)."),
    check_digests: bool = typer.Option(
        True, "--reproduce/--no-reproduce", help="Recompute each digest from the registry."
    ),
    record_keys: list[str] = RECORD_KEYS,
    bootstrap: str = BOOTSTRAP,
) -> None:
    """A directive's report from the topics: timeline, approvals, impact, enforcement per cluster, notices and every
    discrepancy; a short summary here, JSON and HTML to files."""
    window = (_time(since, "--from"), _time(until, "--to"))
    if window[0] and window[1] and window[1] < window[0]:
        raise _fail("--to is before --from", 2)
    settings = kafka_settings(bootstrap)
    signatures = record_signatures(record_keys)
    try:
        evidence = asyncio.run(read_evidence(settings, since=window[0], until=window[1], signatures=signatures))
        reproduced = asyncio.run(_reproduced(settings, evidence, directive_id)) if check_digests else {}
        checkpoint = _checkpoint(ledger, against, keys)
        result = build_report(evidence, directive_id, datetime.now(UTC), window, reproduced, checkpoint)
    except NothingFound as exc:
        raise _fail(str(exc)) from exc
    except Refused as exc:
        raise _fail(str(exc), exc.code) from exc
    _write(json_out, result.model_dump_json(indent=2))
    _write(html_out, render_html(result))
    _summary(result)


async def _reproduced(settings: KafkaSettings, evidence: Evidence, directive_id: str) -> dict[int, str]:
    found = {}
    for (d, revision, action), seen in evidence.assessed.items():
        if d == directive_id and action == "restrict":
            offsets = {int(p): int(o) for p, o in seen.doc["registry_offsets"].items()}
            _, found[revision] = await reproduce(settings, offsets, DirectiveScope.model_validate(seen.doc["scope"]))
    return found


def _checkpoint(ledger: Path | None, against: Path | None, keys: Path | None) -> CheckpointVerification | None:
    settings = AuditSettings()
    folder = against or settings.export_dir
    if ledger is None and folder is None:
        return None
    heads = exported_heads(folder) if folder is not None else []
    store = open_ledger(ledger)
    try:
        check = check_ledger(store.entries(), heads, public_keys(keys, folder, settings) if heads else None)
    finally:
        store.close()
    latest = check.heads[-1].head if check.heads else None
    problems = [c.problem for c in check.heads if c.problem]
    if not check.chain.intact:
        problems.insert(0, f"chain broken at seq {check.chain.broken_seq}: {check.chain.reason}")
    return CheckpointVerification(
        chain_intact=check.chain.intact,
        entries=check.size,
        root=check.root.hex(),
        signed_head_size=latest.size if latest else None,
        signed_head_key=latest.key_id if latest else None,
        signed_head_at=latest.signed_at if latest else None,
        problems=problems,
    )


def _write(path: Path | None, text: str) -> None:
    if path is None:
        return
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise _fail(f"cannot write {path} ({exc.strerror or exc})", 2) from exc


def _mandate(event: Revision | Lift) -> str:
    """Who put a revision in force or lifted it: proposer, approvers, emergency use."""
    who = f"proposed by {event.proposed_by or 'not recorded'}, approved by {event.approved_by or 'no one'}"
    return who + (" [red](emergency, issued alone)[/red]" if event.emergency else "")


def _summary(r: DirectiveReport) -> None:
    timeline = Table("time", "topic", "event", "summary", title=f"directive {r.directive_id}: timeline")
    for line in r.timeline:
        timeline.add_row(line.at.isoformat(timespec="milliseconds"), line.topic, line.event, line.summary)
    out.print(timeline)
    table = Table(
        "revision", "action", "affected", "clusters applied", "notices delivered", title=f"directive {r.directive_id}"
    )
    for a in r.assessments:
        clusters = [c for c in r.clusters if c.revision == a.revision and c.action == a.action]
        notices = [n for n in r.notices if n.revision == a.revision and n.action == NOTICE_ACTION.get(a.action)]
        applied = sum(c.state == "applied" for c in clusters)
        table.add_row(
            str(a.revision),
            a.action,
            f"{a.affected_users:,}",
            f"{applied}/{len(clusters)}",
            f"{sum(n.delivered for n in notices):,}",
        )
    out.print(table)
    for rev in r.revisions:
        out.print(f"revision {rev.revision} issued {rev.issued_at:%Y-%m-%d %H:%M:%S}: {_mandate(rev)}")
    for lift in r.lifts:
        out.print(f"lifted at revision {lift.revision} {lift.lifted_at:%Y-%m-%d %H:%M:%S}: {_mandate(lift)}")
    for group in r.commands:
        out.print(
            f"{group.action} commands of revision {group.revision} to {', '.join(group.clusters)}: "
            f"{group.caused_by or 'no cause named'}",
            highlight=False,
        )
    for d in r.discrepancies[:20]:
        err.print(
            f"[red]{d.kind}[/red] rev {d.revision or '-'} {d.cluster or ''} "
            f"{d.user if d.user is not None else ''}: {d.detail}"
        )
    if r.forgeries:
        err.print(f"[red]{len(r.forgeries)} forged records[/red] (failed signature verification; not used as evidence)")
    verdict = "no discrepancy" if not r.discrepancies_total else f"{r.discrepancies_total:,} discrepancies"
    out.print(
        f"{r.events} events, {verdict}"
        + ("" if r.checkpoint is None else f"; ledger {'verified' if not r.checkpoint.problems else 'NOT verified'}")
    )


# --- explain, at -------------------------------------------------------------------------------------------------


def explain_command(
    user: int = typer.Argument(..., min=0, help="User id."),
    model: str = typer.Argument(..., help="Model name."),
    at: str = typer.Option(None, "--at", help="The moment asked about (ISO 8601; default: now)."),
    as_json: bool = typer.Option(False, "--json", help="The answer as JSON."),
    ledger: Path = typer.Option(
        None, "--ledger", help="Answer from this audit ledger's lookup index instead of reading the topics."
    ),
    record_keys: list[str] = RECORD_KEYS,
    bootstrap: str = BOOTSTRAP,
) -> None:
    """Was USER allowed MODEL at that moment on each cluster, and on what evidence.

    From the topics (default: every record is read, nothing of any service's state is used) or from the audit's
    ledger (--ledger: only the user's and the directives' entries, through its index). Events are placed by
    their occurred_at (Kafka timestamps are when a record was written, which a replayed record does not share)."""
    when = _time(at, "--at") or datetime.now(UTC)
    signatures = record_signatures(record_keys)
    try:
        if ledger is not None:
            store = open_ledger(ledger)
            try:
                answer = explain_from_ledger(store, user, model, when, signatures)
            finally:
                store.close()
        else:
            evidence = asyncio.run(
                read_evidence(
                    kafka_settings(bootstrap), focus_user=user, show_progress=not as_json, signatures=signatures
                )
            )
            answer = explain(evidence, user, model, when)
    except NothingFound as exc:
        raise _fail(str(exc)) from exc
    except Refused as exc:
        raise _fail(str(exc), exc.code) from exc
    if as_json:
        typer.echo(answer_json(answer))
        return
    out.print(f"user {user}, model {model}, at {answer['at']}")
    for cluster, verdict in answer["clusters"].items():
        out.print(f"  {cluster}: {verdict['decision']}" + (f" by {', '.join(verdict['by'])}" if verdict["by"] else ""))
    record = answer["registry_record"]
    if record:
        out.print(
            f"registry record: partition {record['partition']} offset {record['offset']} ({record['at']}): "
            f"{json.dumps(record['record'])}"
        )
    for d in answer["directives"]:
        out.print(
            f"directive {d['directive_id']} revision {d['revision']} issued {d['issued_at']}: covered={d['covered']}"
        )
        if d["selector"]:
            out.print(f"  selector: {d['selector']['kind']} -> {d['selector']['truth']} ({d['selector']['why']})")
        for cluster, c in d["clusters"].items():
            out.print(
                f"  {cluster}: sent {c.get('command_sent_at', '-')}, acked {c.get('acked_at', '-')}, "
                f"digest matches {c.get('digest_matches', '-')}"
            )
        out.print(f"  notice: requested {d['notice']['requested']}, delivered {d['notice']['delivered']}")


def at_command(
    when: str = typer.Argument(..., help="The moment (ISO 8601)."),
    as_json: bool = typer.Option(False, "--json", help="The answer as JSON."),
    record_keys: list[str] = RECORD_KEYS,
    bootstrap: str = BOOTSTRAP,
) -> None:
    """The directives in force at that moment, each cluster's state and the affected counts."""
    moment_asked = _time(when, "TIME")
    try:
        evidence = asyncio.run(
            read_evidence(
                kafka_settings(bootstrap), show_progress=not as_json, signatures=record_signatures(record_keys)
            )
        )
        answer = at_moment(evidence, moment_asked)
    except NothingFound as exc:
        raise _fail(str(exc)) from exc
    if as_json:
        typer.echo(json.dumps(answer, indent=2))
        return
    table = Table("directive", "revision", "affected by model", "clusters", title=f"in force at {answer['at']}")
    for d in answer["directives"]:
        table.add_row(
            d["directive_id"],
            str(d["revision"]),
            json.dumps(d["affected_by_model"]),
            ", ".join(f"{c} {s}" for c, s in d["clusters"].items()),
        )
    out.print(table)
    out.print(f"{answer['directives_in_force']} directives in force")
