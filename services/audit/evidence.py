"""What the topics say happened, folded into one projection an auditor queries (report, explain, at). Pure:
records come in as (topic, partition, offset, key, value, timestamp ms); nothing here reads Kafka or a clock.

Affected sets are held as roaring bitmaps per directive revision and model (chunks of part "whole", then the
deltas with their times), notices as bitmaps of recipients per revision and action; per-user detail (registry
records, notice times) only for the one user a question is about, so a million-user directive stays small.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from pyroaring import BitMap

from services.audit.forgery import NO_CHECK, Signatures
from shared.contracts.bitmaps import decode_bitmap

RevKey = tuple[str, int]  # directive id, revision
ActKey = tuple[str, int, str]  # directive id, revision, action


@dataclass(frozen=True)
class Seen:
    """One event as recorded: when, where, and its document."""

    at: datetime
    topic: str
    partition: int
    offset: int
    doc: dict[str, Any]


@dataclass(frozen=True)
class Forged:
    """A record that fails its topic's signature check: kept aside, never used as evidence."""

    seen: Seen
    reason: str

    @property
    def directive_id(self) -> str | None:
        value = self.seen.doc.get("directive_id")
        return value if isinstance(value, str) else None


@dataclass
class NoticeTally:
    """Recipients of one revision and action: requested, delivered, failed (with reasons)."""

    requested: BitMap = field(default_factory=BitMap)
    delivered: BitMap = field(default_factory=BitMap)
    failed: dict[int, str] = field(default_factory=dict)
    first_at: datetime | None = None
    last_at: datetime | None = None


@dataclass(frozen=True)
class CommandCause:
    """Who a command sent to a cluster says caused it (its `caused_by`, None when it names no one): each distinct
    one kept once per directive revision, action and cluster."""

    at: datetime
    cluster: str
    event: str
    cause: dict | None


@dataclass
class Evidence:
    """Every directive's story as the topics tell it."""

    focus_user: int | None = None
    signatures: Signatures = NO_CHECK
    forgeries: list[Forged] = field(default_factory=list)
    issued: dict[str, list[Seen]] = field(default_factory=lambda: defaultdict(list))
    lifted: dict[str, list[Seen]] = field(default_factory=lambda: defaultdict(list))
    assessed: dict[ActKey, Seen] = field(default_factory=dict)
    sets: dict[RevKey, dict[str, BitMap]] = field(default_factory=lambda: defaultdict(dict))
    deltas: dict[RevKey, list[tuple[datetime, str, BitMap, BitMap]]] = field(default_factory=lambda: defaultdict(list))
    progress: dict[ActKey, list[Seen]] = field(default_factory=lambda: defaultdict(list))
    enforced: dict[ActKey, Seen] = field(default_factory=dict)
    overdue: dict[ActKey, list[Seen]] = field(default_factory=lambda: defaultdict(list))
    acks: dict[RevKey, list[Seen]] = field(default_factory=lambda: defaultdict(list))
    commands: dict[tuple[str, int, str], list[datetime]] = field(default_factory=lambda: defaultdict(list))
    command_causes: dict[ActKey, dict[tuple, CommandCause]] = field(default_factory=lambda: defaultdict(dict))
    cluster_models: dict[str, list[str]] = field(default_factory=dict)
    notices: dict[ActKey, NoticeTally] = field(default_factory=lambda: defaultdict(NoticeTally))
    user_notices: list[Seen] = field(default_factory=list)
    user_records: list[Seen] = field(default_factory=list)
    dead_letters: list[Seen] = field(default_factory=list)
    events: int = 0
    first_at: datetime | None = None
    last_at: datetime | None = None

    def add(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        ts: int,
        headers: object = None,
    ) -> None:
        """Fold one record in (records of one partition in offset order; partitions in any interleaving). A record
        that fails its topic's signature check is set aside as a forgery, and nothing is taken from it."""
        forged = self.signatures.problem(topic, key, value, headers, ts) if self.signatures.keys else None
        if forged is not None:
            doc = _document(value) or {"type": "unparsable"}
            self.forgeries.append(
                Forged(Seen(_time(doc.get("occurred_at"), ts), topic, partition, offset, doc), forged)
            )
            return
        if topic == "identity.users.v1":
            self._user(partition, offset, key, value, ts)
            return
        doc = _document(value)
        if doc is None:
            return
        seen = Seen(_time(doc.get("occurred_at"), ts), topic, partition, offset, doc)
        self.events += 1
        self.first_at = seen.at if self.first_at is None or seen.at < self.first_at else self.first_at
        self.last_at = seen.at if self.last_at is None or seen.at > self.last_at else self.last_at
        handler = _HANDLERS.get(doc.get("type"))
        if handler is not None:
            try:
                handler(self, seen, doc)
            except (KeyError, TypeError, ValueError, OverflowError):  # a value that does not fit its type
                pass

    def _user(self, partition: int, offset: int, key: bytes | None, value: bytes | None, ts: int) -> None:
        if self.focus_user is None or key != str(self.focus_user).encode():
            return
        doc = _document(value) if value is not None else {"type": "tombstone"}
        at = _time((doc or {}).get("occurred_at"), ts)
        self.user_records.append(Seen(at, "identity.users.v1", partition, offset, doc or {"type": "unparsable"}))

    # --- per type ---------------------------------------------------------------------------------------------

    def on_issued(self, seen: Seen, doc: dict) -> None:
        self.issued[doc["directive_id"]].append(seen)

    def on_lifted(self, seen: Seen, doc: dict) -> None:
        self.lifted[doc["directive_id"]].append(seen)

    def on_assessed(self, seen: Seen, doc: dict) -> None:
        self.assessed[(doc["directive_id"], doc["revision"], doc["action"])] = seen

    def on_chunk(self, seen: Seen, doc: dict) -> None:
        if doc.get("part", "whole") != "whole" or doc["action"] != "restrict":
            return
        users = self.sets[(doc["directive_id"], doc["revision"])].setdefault(doc["model"], BitMap())
        users |= decode_bitmap(doc["users"])

    def on_delta(self, seen: Seen, doc: dict) -> None:
        added, removed = decode_bitmap(doc["added"]), decode_bitmap(doc["removed"])
        self.deltas[(doc["directive_id"], doc["revision"])].append((seen.at, doc["model"], added, removed))

    def on_progress(self, seen: Seen, doc: dict) -> None:
        self.progress[(doc["directive_id"], doc["revision"], doc["action"])].append(seen)

    def on_enforced(self, seen: Seen, doc: dict) -> None:
        self.enforced.setdefault((doc["directive_id"], doc["revision"], doc["action"]), seen)

    def on_overdue(self, seen: Seen, doc: dict) -> None:
        self.overdue[(doc["directive_id"], doc["revision"], doc["action"])].append(seen)

    def on_ack(self, seen: Seen, doc: dict) -> None:
        self.acks[(doc["directive_id"], doc["revision"])].append(seen)

    def on_command(self, seen: Seen, doc: dict) -> None:
        self._command_cause(seen, doc)
        if doc.get("type") == "RestrictCommand" and doc.get("chunk", 0) != 0:
            return  # one send per revision and cluster is what is timed
        self.commands[(doc["directive_id"], doc["revision"], doc["cluster_id"])].append(seen.at)

    def _command_cause(self, seen: Seen, doc: dict) -> None:
        action = _COMMAND_ACTIONS.get(doc.get("type"))
        if action is None:
            return
        cause = doc.get("caused_by") if isinstance(doc.get("caused_by"), dict) else None
        key = (doc["cluster_id"], doc["type"], orjson.dumps(cause, option=orjson.OPT_SORT_KEYS))
        causes = self.command_causes[(doc["directive_id"], doc["revision"], action)]
        if key not in causes:
            causes[key] = CommandCause(seen.at, doc["cluster_id"], doc["type"], cause)

    def on_heartbeat(self, seen: Seen, doc: dict) -> None:
        self.cluster_models[doc["cluster_id"]] = list(doc.get("models", []))

    def on_notice(self, seen: Seen, doc: dict) -> None:
        tally = self.notices[(doc["directive_id"], doc["revision"], doc["action"])]
        recipient = doc["recipient"]
        kind = doc["type"]
        if kind == "NotificationRequested":
            tally.requested.add(recipient)
        elif kind == "NotificationDelivered":
            tally.delivered.add(recipient)
        else:
            tally.failed[recipient] = str(doc.get("reason", ""))
        tally.first_at = seen.at if tally.first_at is None or seen.at < tally.first_at else tally.first_at
        tally.last_at = seen.at if tally.last_at is None or seen.at > tally.last_at else tally.last_at
        if recipient == self.focus_user:
            self.user_notices.append(seen)

    def on_dead_letter(self, seen: Seen, doc: dict) -> None:
        self.dead_letters.append(seen)

    # --- queries shared by report, explain and at ---------------------------------------------------------------

    def revision_at(self, directive_id: str, at: datetime) -> Seen | None:
        """The highest revision issued by `at` (a late older revision is ignored), None if none yet or lifted."""
        issued = [s for s in self.issued.get(directive_id, []) if s.at <= at]
        if not issued:
            return None
        latest = max(issued, key=lambda s: s.doc["revision"])
        lifts = [
            s for s in self.lifted.get(directive_id, []) if s.at <= at and s.doc["revision"] >= latest.doc["revision"]
        ]
        return None if lifts else latest

    def in_force(self, directive_id: str, at: datetime) -> Seen | None:
        """The revision in force at `at`: issued, not lifted, and within its effective window."""
        seen = self.revision_at(directive_id, at)
        if seen is None:
            return None
        scope = seen.doc["scope"]
        start, end = parse_time(scope.get("effective_from")), parse_time(scope.get("expires_at"))
        if (start and at < start) or (end and at >= end):
            return None
        return seen

    def affected_at(self, directive_id: str, revision: int, model: str, at: datetime) -> BitMap:
        """The revision's affected set for a model as of `at`: the assessment's chunks, then deltas up to `at`."""
        users = BitMap(self.sets.get((directive_id, revision), {}).get(model, BitMap()))
        for when, delta_model, added, removed in self.deltas.get((directive_id, revision), []):
            if delta_model == model and when <= at:
                users -= removed
                users |= added
        return users

    def covers(self, directive_id: str, revision: int, model: str, user: int, at: datetime) -> bool:
        """Whether the user is in the revision's set for the model at `at` (no bitmap copied)."""
        covered = user in self.sets.get((directive_id, revision), {}).get(model, ())
        for when, delta_model, added, removed in self.deltas.get((directive_id, revision), []):
            if delta_model == model and when <= at:
                covered = (covered and user not in removed) or user in added
        return covered


_COMMAND_ACTIONS = {"RestrictCommand": "restrict", "LiftCommand": "lift", "DeltaCommand": "delta"}


def _document(value: bytes | None) -> dict | None:
    if value is None:
        return None
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None


def _time(text: object, ts: int) -> datetime:
    """An event's occurred_at, else its Kafka timestamp."""
    return parse_time(text) or datetime.fromtimestamp(ts / 1000, UTC)


def parse_time(text: object) -> datetime | None:
    """An ISO 8601 time in a document (UTC when it names no zone), None when absent or unreadable."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


_HANDLERS = {
    "DirectiveIssued": Evidence.on_issued,
    "DirectiveLifted": Evidence.on_lifted,
    "ImpactAssessed": Evidence.on_assessed,
    "AffectedSetChunk": Evidence.on_chunk,
    "AffectedSetDelta": Evidence.on_delta,
    "EnforcementProgressed": Evidence.on_progress,
    "DirectiveEnforced": Evidence.on_enforced,
    "EnforcementOverdue": Evidence.on_overdue,
    "CommandApplied": Evidence.on_ack,
    "CommandFailed": Evidence.on_ack,
    "RestrictCommand": Evidence.on_command,
    "LiftCommand": Evidence.on_command,
    "DeltaCommand": Evidence.on_command,
    "AgentHeartbeat": Evidence.on_heartbeat,
    "NotificationRequested": Evidence.on_notice,
    "NotificationDelivered": Evidence.on_notice,
    "NotificationFailed": Evidence.on_notice,
    "DeadLetter": Evidence.on_dead_letter,
}
