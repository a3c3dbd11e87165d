"""A directive's report from the evidence: revisions, approvals, impact, per-cluster enforcement, notices, and
every discrepancy one by one. Pure: the evidence, the time and the reproduced digests come in."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from itertools import islice

from services.audit.evidence import CommandCause, Evidence, Forged, Seen, parse_time
from services.audit.report_model import (
    Assessment,
    CheckpointVerification,
    ClusterEnforcement,
    CommandGroup,
    DirectiveReport,
    Discrepancy,
    ForgedRecord,
    Lift,
    Notices,
    Revision,
    TimelineLine,
)

DISCREPANCY_LIMIT = 10_000  # listed one by one up to here; the total is always given
NOTICE_ACTION = {"restrict": "restricted", "lift": "restored"}


class NothingFound(LookupError):
    """No event of the directive (in the window asked): the message says which."""


def build_report(
    evidence: Evidence,
    directive_id: str,
    now: datetime,
    window: tuple[datetime | None, datetime | None] = (None, None),
    reproduced: Mapping[int, str] | None = None,
    checkpoint: CheckpointVerification | None = None,
) -> DirectiveReport:
    """The report of one directive; NothingFound for an unknown directive or a window without its events."""
    forged = [f for f in evidence.forgeries if f.directive_id == directive_id and _within(f.seen.at, window)]
    lines = sorted(_timeline(evidence, directive_id, window) + [_forged_line(f) for f in forged], key=_line_order)
    if not evidence.issued.get(directive_id):
        raise NothingFound(f"directive_id: no DirectiveIssued for {directive_id!r} on compliance.directives.v1")
    if not lines:
        raise NothingFound(f"no event of {directive_id!r} between {window[0] or 'the start'} and {window[1] or 'now'}")
    revisions = [_revision(s) for s in sorted(evidence.issued[directive_id], key=lambda s: s.doc["revision"])]
    assessments = [_assessment(s, (reproduced or {}).get(k[1])) for k, s in _mine(evidence.assessed, directive_id)]
    clusters = list(_clusters(evidence, directive_id))
    notices = [_notices(k, t) for k, t in _mine(evidence.notices, directive_id)]
    found = [_forgery_discrepancy(f) for f in forged]
    found += _discrepancies(evidence, directive_id, revisions, assessments, clusters)
    listed, unlisted = _undelivered_notices(evidence, directive_id, DISCREPANCY_LIMIT - len(found))
    found += listed
    found += _uncovered_notices(assessments, notices, evidence, directive_id)
    return DirectiveReport(
        directive_id=directive_id,
        generated_at=now,
        window_from=window[0],
        window_to=window[1],
        events=len(lines),
        revisions=revisions,
        lifts=[
            Lift(
                revision=s.doc["revision"],
                lifted_at=s.at,
                reason=s.doc.get("reason", ""),
                proposed_by=_who(s.doc.get("proposed_by")),
                approved_by=_who(s.doc.get("approved_by")),
                emergency=bool(s.doc.get("emergency")),
            )
            for s in evidence.lifted.get(directive_id, [])
        ],
        assessments=assessments,
        clusters=clusters,
        commands=list(_command_groups(evidence, directive_id)),
        notices=notices,
        discrepancies=found[:DISCREPANCY_LIMIT],
        discrepancies_total=len(found) + unlisted,
        timeline=lines,
        forgeries=[
            ForgedRecord(
                topic=f.seen.topic,
                partition=f.seen.partition,
                offset=f.seen.offset,
                at=f.seen.at,
                event=str(f.seen.doc.get("type")),
                reason=f.reason,
            )
            for f in forged
        ],
        signed_topics=list(evidence.signatures.topics),
        checkpoint=checkpoint,
    )


def _within(at: datetime, window: tuple[datetime | None, datetime | None]) -> bool:
    return (window[0] is None or at >= window[0]) and (window[1] is None or at <= window[1])


def _line_order(line: TimelineLine) -> tuple:
    """Time, then what the line says: the same order however the topics' partitions were interleaved."""
    return (line.at, line.topic, line.event, line.summary)


def _forged_line(forged: Forged) -> TimelineLine:
    seen = forged.seen
    return TimelineLine(
        at=seen.at,
        topic=seen.topic,
        event=str(seen.doc.get("type")),
        summary=f"FORGED ({forged.reason}): partition {seen.partition} offset {seen.offset}, not used as evidence",
        forged=True,
    )


def _forgery_discrepancy(forged: Forged) -> Discrepancy:
    seen = forged.seen
    revision = seen.doc.get("revision")
    return Discrepancy(
        kind="forged_record",
        revision=revision if isinstance(revision, int) else None,
        cluster=seen.doc.get("cluster_id") if isinstance(seen.doc.get("cluster_id"), str) else None,
        at=seen.at,
        detail=f"{seen.doc.get('type')} on {seen.topic} partition {seen.partition} offset {seen.offset}: "
        f"{forged.reason}",
    )


def _mine(table: Mapping, directive_id: str) -> list:
    return sorted(((k, v) for k, v in table.items() if k[0] == directive_id), key=lambda kv: kv[0][1:])


def _revision(seen: Seen) -> Revision:
    doc, scope = seen.doc, seen.doc["scope"]
    return Revision(
        revision=doc["revision"],
        issued_at=seen.at,
        title=doc.get("title", ""),
        authority=doc.get("authority", ""),
        models=scope["models"],
        selector=scope["selector"],
        unknown_attribute=scope.get("unknown_attribute", "restrict"),
        enforcement_deadline_s=scope.get("enforcement_deadline_s", 300),
        proposed_by=_who(doc.get("proposed_by")),
        approved_by=_who(doc.get("approved_by")),
        emergency=bool(doc.get("emergency")),
    )


def _who(value: object) -> str | None:
    """An identity as recorded: a name, an object with one, or a list of them (the four-eyes fields may carry
    any)."""
    if isinstance(value, dict):
        return str(value.get("subject") or value.get("name") or value.get("id") or value)
    if isinstance(value, list):  # approvers: everyone who approved, in order
        return ", ".join(name for name in map(_who, value) if name) or None
    return None if value is None else str(value)


def _assessment(seen: Seen, reproduced: str | None) -> Assessment:
    doc = seen.doc
    return Assessment(
        revision=doc["revision"],
        action=doc["action"],
        assessed_at=seen.at,
        affected_users=doc["affected_users"],
        affected_by_model=doc["affected_by_model"],
        losing_by_model=doc.get("losing_by_model"),
        by_country=doc.get("by_country", {}),
        by_account_type=doc.get("by_account_type", {}),
        digest=doc["digest"],
        registry_offsets={str(p): o for p, o in doc.get("registry_offsets", {}).items()},
        reproduced_digest=reproduced if doc["action"] == "restrict" else None,
    )


def _clusters(evidence: Evidence, directive_id: str) -> Iterator[ClusterEnforcement]:
    issued = {s.doc["revision"]: s.at for s in evidence.issued.get(directive_id, [])}
    lifted = {s.doc["revision"]: s.at for s in evidence.lifted.get(directive_id, [])}
    for (_, revision, action), updates in _mine(evidence.progress, directive_id):
        latest = max(updates, key=lambda s: s.at)
        final = evidence.enforced.get((directive_id, revision, action))
        states = (final or latest).doc["clusters"]
        start = (issued if action == "restrict" else lifted).get(revision)
        for cluster, progress in sorted(states.items()):
            acked = parse_time(progress.get("acked_at"))
            yield ClusterEnforcement(
                cluster=cluster,
                revision=revision,
                action=action,
                state=progress["state"],
                sent_at=parse_time(progress.get("sent_at")),
                acked_at=acked,
                time_to_enforce_s=round((acked - start).total_seconds(), 3) if acked and start else None,
                deadline=parse_time(latest.doc.get("deadline")),
                digest=progress.get("digest"),
                expected_digest=progress.get("expected_digest") or latest.doc.get("expected_digest"),
            )


def _command_groups(evidence: Evidence, directive_id: str) -> Iterator[CommandGroup]:
    for (_, revision, action), causes in _mine(evidence.command_causes, directive_id):
        groups: dict[str | None, list[CommandCause]] = {}
        for command in causes.values():
            groups.setdefault(cause_text(command.cause), []).append(command)
        for text, commands in sorted(groups.items(), key=lambda g: min(c.at for c in g[1])):
            yield CommandGroup(
                revision=revision,
                action=action,
                clusters=sorted({c.cluster for c in commands}),
                first_at=min(c.at for c in commands),
                caused_by=text,
            )


def cause_text(cause: Mapping | None) -> str | None:
    """A cause in words: who proposed and approved, an emergency issuer and the reason, or a registry's producers."""
    if not cause or not any(cause.get(k) for k in ("proposed_by", "approved_by", "registry_producers")):
        return None
    if cause.get("registry_producers"):
        return f"registry records by {', '.join(map(str, cause['registry_producers']))}"
    who = f"proposed by {cause.get('proposed_by') or 'not recorded'}"
    if cause.get("emergency"):
        return f"{who} (emergency, acting alone: {cause.get('emergency_reason', '')})"
    return f"{who}, approved by {_who(cause.get('approved_by')) or 'no one'}"


def _mandate_of(doc: Mapping) -> tuple:
    """What a directive event and a command's cause must agree on."""
    approvers = doc.get("approved_by") or []
    return (
        doc.get("proposal_id"),
        doc.get("proposed_by"),
        list(approvers) if isinstance(approvers, list) else [approvers],
        bool(doc.get("emergency")),
    )


def _cause_mismatches(evidence: Evidence, directive_id: str) -> Iterator[Discrepancy]:
    """A restrict or lift command whose cause is not the one its directive revision records (a delta's cause is
    the registry's, not the directive's). A command naming no cause is checked only when the revision names one."""
    events = {"restrict": evidence.issued.get(directive_id, []), "lift": evidence.lifted.get(directive_id, [])}
    for (_, revision, action), causes in _mine(evidence.command_causes, directive_id):
        mandates = [s.doc for s in events.get(action, []) if s.doc.get("revision") == revision]
        if not mandates:
            continue
        expected = _mandate_of(mandates[-1])
        for command in sorted(causes.values(), key=lambda c: (c.at, c.cluster)):
            named = _mandate_of(command.cause or {})
            if named != expected and (command.cause is not None or expected != _mandate_of({})):
                yield Discrepancy(
                    kind="cause_mismatch",
                    revision=revision,
                    cluster=command.cluster,
                    at=command.at,
                    detail=f"{command.event} names {cause_text(command.cause) or 'no cause'}; revision {revision} "
                    f"{'was issued' if action == 'restrict' else 'was lifted'} "
                    f"{cause_text(mandates[-1]) or 'with no cause recorded'}",
                )


def _notices(key: tuple, tally) -> Notices:
    return Notices(
        revision=key[1],
        action=key[2],
        requested=len(tally.requested),
        delivered=len(tally.delivered),
        failed=len(tally.failed),
        first_at=tally.first_at,
        last_at=tally.last_at,
    )


def _discrepancies(
    evidence: Evidence,
    directive_id: str,
    revisions: list[Revision],
    assessments: list[Assessment],
    clusters: list[ClusterEnforcement],
) -> Iterator[Discrepancy]:
    for r in revisions:
        if r.emergency:
            yield Discrepancy(
                kind="emergency_issue",
                revision=r.revision,
                at=r.issued_at,
                detail=f"revision {r.revision} issued under the emergency role (no second approver)",
            )
    for a in assessments:
        if a.reproduced_digest is not None and a.reproduced_digest != a.digest:
            yield Discrepancy(
                kind="reproduction_mismatch",
                revision=a.revision,
                at=a.assessed_at,
                detail=f"published digest {a.digest[:12]}…, the registry at the recorded offsets gives "
                f"{a.reproduced_digest[:12]}…",
            )
    for c in clusters:
        yield from _cluster_discrepancies(c)
    yield from _cause_mismatches(evidence, directive_id)
    for (_, revision, action), updates in _mine(evidence.progress, directive_id):
        yield from _healed_drift(revision, action, updates)
    for (_, revision), acks in _mine(evidence.acks, directive_id):
        for ack in sorted(acks, key=lambda s: (s.at, s.doc.get("cluster_id", ""), s.offset)):
            if ack.doc["type"] == "CommandFailed":
                yield Discrepancy(
                    kind="command_failed",
                    revision=revision,
                    cluster=ack.doc["cluster_id"],
                    at=ack.at,
                    detail=ack.doc.get("reason", ""),
                )


def _undelivered_notices(evidence: Evidence, directive_id: str, room: int) -> tuple[list[Discrepancy], int]:
    """Each notice requested and never delivered (failed, or missing), listed while there is `room` in the report;
    how many more there are (counted on the bitmaps: a million undelivered notices are not a million objects)."""
    listed: list[Discrepancy] = []
    unlisted = 0
    for (_, revision, action), tally in _mine(evidence.notices, directive_id):
        undelivered = tally.requested - tally.delivered
        shown = list(islice(undelivered, max(room - len(listed), 0)))
        unlisted += len(undelivered) - len(shown)
        listed += [
            Discrepancy(
                kind="failed_notice",
                revision=revision,
                user=user,
                detail=f"{action} notice failed: {tally.failed[user]}",
            )
            if user in tally.failed
            else Discrepancy(
                kind="missing_notice",
                revision=revision,
                user=user,
                detail=f"{action} notice requested, never delivered",
            )
            for user in shown
        ]
    return listed, unlisted


def _healed_drift(revision: int, action: str, updates: list[Seen]) -> Iterator[Discrepancy]:
    """A cluster marked drifted, then applied again with the expected digest: one discrepancy per episode."""
    drifted: dict[str, Seen] = {}
    for update in sorted(updates, key=lambda s: (s.at, s.offset)):
        for cluster, progress in sorted(update.doc["clusters"].items()):
            state = progress.get("state")
            if state == "drifted":
                drifted.setdefault(cluster, update)
                continue
            expected = progress.get("expected_digest") or update.doc.get("expected_digest")
            if cluster in drifted and state == "applied" and progress.get("digest") in (None, expected):
                found = drifted.pop(cluster)
                reason = found.doc["clusters"][cluster].get("reason") or "drifted"
                yield Discrepancy(
                    kind="drift_healed",
                    revision=revision,
                    cluster=cluster,
                    at=update.at,
                    detail=f"{action}: {reason} at {found.at.isoformat()}; the expected digest applied again "
                    f"{(update.at - found.at).total_seconds():.1f}s later",
                )


def _cluster_discrepancies(c: ClusterEnforcement) -> Iterator[Discrepancy]:
    if c.state != "applied":
        yield Discrepancy(
            kind="missing_ack",
            revision=c.revision,
            cluster=c.cluster,
            detail=f"{c.action}: no digest-checked ack (state {c.state})",
        )
    elif c.digest and c.expected_digest and c.digest != c.expected_digest:
        yield Discrepancy(
            kind="digest_mismatch",
            revision=c.revision,
            cluster=c.cluster,
            at=c.acked_at,
            detail=f"acked {c.digest[:12]}…, expected {c.expected_digest[:12]}…",
        )
    if c.acked_at and c.deadline and c.acked_at > c.deadline:
        late = (c.acked_at - c.deadline).total_seconds()
        yield Discrepancy(
            kind="enforced_after_deadline",
            revision=c.revision,
            cluster=c.cluster,
            at=c.acked_at,
            detail=f"{c.action} acknowledged {late:.1f}s after the deadline",
        )


def _uncovered_notices(
    assessments: list[Assessment], notices: list[Notices], evidence: Evidence, directive_id: str
) -> Iterator[Discrepancy]:
    sent = {(n.revision, n.action): n.requested for n in notices}
    for a in assessments:
        if (directive_id, a.revision, a.action) not in evidence.enforced:
            continue  # notices go out once enforcement is confirmed
        requested = sent.get((a.revision, NOTICE_ACTION.get(a.action, a.action)), 0)
        told, who = _told_at_least(a)
        if requested < told:
            yield Discrepancy(
                kind="missing_notice",
                revision=a.revision,
                detail=f"{a.action}: {requested:,} notices requested, fewer than the {told:,} {who}",
            )


def _told_at_least(a: Assessment) -> tuple[int, str]:
    """How many notices an assessment calls for at least, and who they are. Only users who lose (regain) a model
    are told: with the per-model losing counts that is at least the largest of them (a user losing two models
    is told once); an assessment from before those counts calls for one per affected user."""
    if a.losing_by_model is None:
        return a.affected_users, "affected users"
    model, losing = max(a.losing_by_model.items(), key=lambda item: (item[1], item[0]), default=("", 0))
    return losing, f"users losing {model}" if a.action == "restrict" else f"users regaining {model}"


def _timeline(
    evidence: Evidence, directive_id: str, window: tuple[datetime | None, datetime | None]
) -> list[TimelineLine]:
    lines = []
    start, end = window

    def add(seen: Seen, summary: str) -> None:
        if (start is None or seen.at >= start) and (end is None or seen.at <= end):
            lines.append(TimelineLine(at=seen.at, topic=seen.topic, event=seen.doc["type"], summary=summary))

    for s in evidence.issued.get(directive_id, []):
        add(s, f"revision {s.doc['revision']}: {', '.join(s.doc['scope']['models'])}")
    for s in evidence.lifted.get(directive_id, []):
        add(s, f"revision {s.doc['revision']} lifted {s.doc.get('reason', '')}".rstrip())
    for _, s in _mine(evidence.assessed, directive_id):
        add(
            s,
            f"{s.doc['action']} revision {s.doc['revision']}: {s.doc['affected_users']:,} users, "
            f"digest {s.doc['digest'][:12]}…",
        )
    for _, updates in _mine(evidence.progress, directive_id):
        for s in updates:
            applied = sum(1 for p in s.doc["clusters"].values() if p.get("state") == "applied")
            add(
                s,
                f"{s.doc['action']} revision {s.doc['revision']}: {applied}/{len(s.doc['clusters'])} clusters applied",
            )
    for _, s in _mine(evidence.enforced, directive_id):
        add(s, f"{s.doc['action']} revision {s.doc['revision']} enforced on every cluster")
    for _, updates in _mine(evidence.overdue, directive_id):
        for s in updates:
            add(s, f"overdue: {', '.join(s.doc['overdue_clusters'])}")
    for _, acks in _mine(evidence.acks, directive_id):
        for s in acks:
            add(s, f"{s.doc['cluster_id']} {s.doc.get('action', 'failed')} revision {s.doc['revision']}")
    return sorted(lines, key=_line_order)
