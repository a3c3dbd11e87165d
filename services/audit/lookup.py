"""What the ledger indexes each entry under, so one user's question reads only that user's and the directives'
entries: `user:ID` (registry records, notices), `directive:ID` (directive, impact, command, ack and enforcement
events), `heartbeat:CLUSTER` (the latest only). Pure."""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from services.audit.evidence import parse_time
from services.audit.record import Record
from shared.contracts.catalogue import ACKS, COMMANDS, DIRECTIVES, ENFORCEMENT, IMPACT, NOTIFICATIONS, USERS

KEYED_BY_DIRECTIVE = frozenset({DIRECTIVES.name, IMPACT.name, ENFORCEMENT.name})
KEYED_BY_USER = frozenset({USERS.name, NOTIFICATIONS.name})
# The topics whose events place the first recorded moment (what `explain --at` may not precede).
EVENT_TOPICS = frozenset({DIRECTIVES.name, IMPACT.name, COMMANDS.name, ACKS.name, ENFORCEMENT.name, NOTIFICATIONS.name})
DIRECTIVE_RANGE = ("directive:", "directive;")  # every directive key sorts between these


def user_key(user: int) -> str:
    return f"user:{user}"


def keys_of(record: Record) -> tuple[list[str], str | None]:
    """(lookup keys, latest key) of one record: what it is found under, and the one slot it takes if newest."""
    key = record.key.decode("ascii", errors="replace") if record.key is not None else None
    if record.topic in KEYED_BY_USER:
        return ([user_key(int(key))] if key and key.isdigit() else []), None
    if record.topic in KEYED_BY_DIRECTIVE:
        return [f"directive:{key or ''}"], None  # a record without its key is still found with the directives
    if record.topic in (COMMANDS.name, ACKS.name):
        doc = _doc(record.value)
        if doc.get("type") == "AgentHeartbeat" and isinstance(doc.get("cluster_id"), str):
            return [], f"heartbeat:{doc['cluster_id']}"
        if doc.get("type") == "RestrictCommand" and doc.get("chunk", 0) != 0:
            return [], None  # only a revision's first chunk is evidence (when it was sent)
        if isinstance(doc.get("directive_id"), str):
            return [f"directive:{doc['directive_id']}"], None
    return [], None


def event_us(record: Record) -> int | None:
    """When an event on the event topics happened (occurred_at, else the Kafka timestamp) in microseconds."""
    if record.topic not in EVENT_TOPICS or record.value is None:
        return None
    doc = _doc(record.value)
    if not doc:
        return None
    moment = parse_time(doc.get("occurred_at"))
    if moment is not None:
        return int(moment.timestamp() * 1_000_000)
    return None if record.kafka_timestamp is None else record.kafka_timestamp * 1000


def earliest(records: Iterable[Record]) -> int | None:
    return min((t for t in map(event_us, records) if t is not None), default=None)


def _doc(value: bytes | None) -> dict:
    if value is None:
        return {}
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return {}
    return doc if isinstance(doc, dict) else {}
