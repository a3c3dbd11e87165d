"""A directive's timeline from ledger entries, one human line per event (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from services.audit.chain import Entry
from services.audit.forgery import NO_CHECK, Signatures
from services.audit.record import parsed

# Types that come in hundreds or millions per directive: one line with a count instead.
AGGREGATED = frozenset(
    {"NotificationRequested", "NotificationDelivered", "NotificationFailed", "AffectedSetChunk", "RestrictCommand"}
)


@dataclass(frozen=True)
class Line:
    """One line of a timeline."""

    time: datetime | None
    topic: str
    event: str
    summary: str
    seq: int


def concerns(entry: Entry, directive_id: str) -> bool:
    """Whether an entry belongs to the directive: its correlation id or its key is the directive id."""
    return entry.envelope.correlation_id == directive_id or entry.record.key == directive_id.encode()


def events_of(entries: Iterable[Entry], directive_id: str) -> list[Entry]:
    """The directive's entries in the order they happened (event time, then ledger order)."""
    mine = [e for e in entries if concerns(e, directive_id)]
    return sorted(mine, key=lambda e: (_sortable(time_of(e)), e.seq))


def forgery(entry: Entry, signatures: Signatures) -> str | None:
    """Why the entry's record fails its topic's signature check, None when it passes (or is not checked)."""
    r = entry.record
    return signatures.problem(r.topic, r.key, r.value, r.headers, r.kafka_timestamp)


def timeline(entries: Iterable[Entry], directive_id: str, signatures: Signatures = NO_CHECK) -> list[Line]:
    """The directive's timeline; aggregated types collapse into one line at their first occurrence; a forged
    record gets a line of its own, marked FORGED."""
    lines: list[Line] = []
    counts: dict[str, tuple[int, set[str]]] = {}
    for entry in events_of(entries, directive_id):
        event = entry.envelope.type or _untyped(entry)
        forged = forgery(entry, signatures)
        if forged is not None:
            lines.append(
                Line(time_of(entry), entry.record.topic, f"FORGED {event}", f"{forged}: {summary(entry)}", entry.seq)
            )
            continue
        if event in AGGREGATED:
            if event not in counts:
                counts[event] = (len(lines), set())
                lines.append(Line(time_of(entry), entry.record.topic, event, "", entry.seq))
            counts[event][1].add(entry.envelope.event_id or f"seq:{entry.seq}")
            continue
        lines.append(Line(time_of(entry), entry.record.topic, event, summary(entry), entry.seq))
    for event, (index, ids) in counts.items():
        line = lines[index]
        lines[index] = Line(line.time, line.topic, event, f"{event} x {len(ids):,}", line.seq)
    return lines


def time_of(entry: Entry) -> datetime | None:
    """When the event happened: its occurred_at, else the Kafka timestamp."""
    document = parsed(entry.record.value)
    if isinstance(document, dict) and isinstance(document.get("occurred_at"), str):
        try:
            return datetime.fromisoformat(document["occurred_at"].replace("Z", "+00:00"))
        except ValueError:
            pass
    if entry.record.kafka_timestamp is None:
        return None
    return datetime.fromtimestamp(entry.record.kafka_timestamp / 1000, UTC)


def _sortable(moment: datetime | None) -> datetime:
    if moment is None:
        return datetime.max.replace(tzinfo=UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _untyped(entry: Entry) -> str:
    return "tombstone" if entry.record.value is None else "unparsable"


def summary(entry: Entry) -> str:
    """One human line describing an entry."""
    document = parsed(entry.record.value)
    event = entry.envelope.type or _untyped(entry)
    if not isinstance(document, dict):
        size = 0 if entry.record.value is None else len(entry.record.value)
        return f"{event} (key {_key(entry)}, {size} bytes)"
    describe = _SUMMARIES.get(event)
    try:
        return f"{event}{describe(document)}" if describe else f"{event} {entry.envelope.event_id or ''}".rstrip()
    except (KeyError, TypeError, AttributeError, ValueError):  # a value that does not fit its type
        return f"{event} (does not match its schema)"


def _key(entry: Entry) -> str:
    return "none" if entry.record.key is None else entry.record.key.decode(errors="replace")


def _short(digest: object) -> str:
    return f"{str(digest)[:6]}…"


def _clusters(states: dict) -> str:
    applied = sum(1 for p in states.values() if p.get("state") == "applied")
    return f"{applied}/{len(states)} applied"


_SUMMARIES: dict[str, Callable[[dict], str]] = {
    "DirectiveIssued": lambda d: f" rev {d['revision']}: {', '.join(d['scope']['models'])}",
    "DirectiveLifted": lambda d: f" rev {d['revision']}" + (f": {d['reason']}" if d.get("reason") else ""),
    "ImpactAssessed": lambda d: f" {d['action']}: {d['affected_users']:,} users, digest {_short(d['digest'])}",
    "AffectedSetDelta": lambda d: f" seq {d['seq']} {d['model']}, digest {_short(d['model_digest'])}",
    "DeltaCommand": lambda d: f" {d['cluster_id']} seq {d['seq']} {d['model']}",
    "LiftCommand": lambda d: f" {d['cluster_id']} rev {d['revision']}",
    "CommandApplied": lambda d: f" {d['cluster_id']} {d['action']} rev {d['revision']}, digest {_short(d['digest'])}",
    "CommandFailed": lambda d: f" {d['cluster_id']} rev {d['revision']}: {d['reason']}",
    "EnforcementProgressed": lambda d: f" {d['action']} rev {d['revision']}: {_clusters(d['clusters'])}",
    "DirectiveEnforced": lambda d: ": " + ", ".join(f"{c} {s:.2f}s" for c, s in d["ack_latency_s"].items()),
    "EnforcementOverdue": lambda d: f" {d['action']} rev {d['revision']}: {', '.join(d['overdue_clusters'])}",
    "DeadLetter": lambda d: f" from {d['topic']}@{d['partition']}:{d['offset']}: {d['reason']}",
    "AffectedSetChunk": lambda d: f" {d['model']} chunk {d['chunk'] + 1}/{d['chunks']}",
    "RestrictCommand": lambda d: f" {d['cluster_id']} {_restricted(d)}",
    "NotificationRequested": lambda d: f" {d['recipient']} {d['action']} rev {d['revision']}",
    "NotificationDelivered": lambda d: f" {d['recipient']} {d['action']} rev {d['revision']}",
    "NotificationFailed": lambda d: f" {d['recipient']} {d['action']} rev {d['revision']}: {d['reason']}",
    "UserUpserted": lambda d: f" {d['user_id']}",
    "AuditCheckpoint": lambda d: f" {d['entries']:,} entries, head {_short(d['head_hash'])}",
}


def _restricted(d: dict) -> str:
    """What a restrict command carries: references to set copies, or (the inline form) one chunk of users."""
    if isinstance(d.get("sets"), list):
        return "sets " + ", ".join(f"{r.get('model')} v{r.get('version')}" for r in d["sets"] if isinstance(r, dict))
    return f"{d.get('model')} chunk {d.get('chunk', 0) + 1}/{d.get('chunks')}"
