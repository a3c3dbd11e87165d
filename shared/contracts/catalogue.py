"""The topic catalogue: every topic's name, message type, key, partitions, retention and cleanup.

Topics are created from this catalogue by `countermand topics apply`, never by broker auto-create.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter

from shared.contracts.audit import AuditCheckpoint
from shared.contracts.deadletter import DeadLetter
from shared.contracts.directives import DirectiveEvent
from shared.contracts.enforcement import EnforcementEvent
from shared.contracts.impact import ImpactEvent
from shared.contracts.limits import MAX_MESSAGE_BYTES
from shared.contracts.notifications import NotificationEvent
from shared.contracts.serving import AckEvent, ClusterCommand
from shared.contracts.set_copies import SetChunk
from shared.contracts.users import UserUpserted

FOREVER = -1
WEEK_MS = 7 * 24 * 3600 * 1000
# MAX_MESSAGE_BYTES (shared.contracts.limits) is the largest record any topic takes (max.message.bytes; the
# local broker's message.max.bytes too), defined with the limits on directives that it bounds. Producers
# send at most this much and consumers fetch at least twice this much per partition, so a record the broker
# accepted can always be fetched, and a dead letter about any record can always be written (see DeadLetter).
FETCH_BYTES = 2 * MAX_MESSAGE_BYTES
# The audit horizon: how long after an assessment the registry still holds every record it was computed from.
# A record is compacted away only once a later record of its user is older than min.compaction.lag.ms, so the
# registry at an assessment's offsets is reproducible for this long after it; deleted users' tombstones are
# kept as long (delete.retention.ms). `countermand topics apply --audit-horizon-days N` sets another horizon.
DAY_MS = 24 * 3600 * 1000
AUDIT_HORIZON_DAYS = 400
SERVICES = ("intake", "impact", "enforcement", "agent", "notifier", "audit")


@dataclass(frozen=True)
class Topic:
    """One topic of the contract."""

    name: str
    message: Any  # the pydantic type (often a discriminated union) every value must parse as
    key: str  # the field whose value is the Kafka key
    partitions: int
    retention_ms: int
    cleanup: str = "delete"
    extra: dict[str, str] = field(default_factory=dict)
    max_message_bytes: int = MAX_MESSAGE_BYTES

    @property
    def adapter(self) -> TypeAdapter:
        return _adapter(self.name)

    def configs(self, audit_horizon_days: int | None = None) -> dict[str, str]:
        """Broker-side topic configs; `audit_horizon_days` replaces the catalogue's horizon where it applies."""
        configs = {
            "cleanup.policy": self.cleanup,
            "retention.ms": str(self.retention_ms),
            "max.message.bytes": str(self.max_message_bytes),
            **self.extra,
        }
        if audit_horizon_days is not None:
            if audit_horizon_days < 1:
                raise ValueError(f"the audit horizon must be at least 1 day, got {audit_horizon_days}")
            for name in HORIZON_CONFIGS:
                if name in configs:
                    configs[name] = str(audit_horizon_days * DAY_MS)
        return configs


DIRECTIVES = Topic("compliance.directives.v1", DirectiveEvent, "directive_id", 3, FOREVER)
USERS = Topic(
    "identity.users.v1",
    UserUpserted,
    "user_id",
    6,
    FOREVER,
    "compact",
    {
        "min.compaction.lag.ms": str(AUDIT_HORIZON_DAYS * DAY_MS),
        "delete.retention.ms": str(AUDIT_HORIZON_DAYS * DAY_MS),
    },
)
# The configs that keep what an audit horizon needs (set from the horizon given to `topics apply`).
HORIZON_CONFIGS = ("min.compaction.lag.ms", "delete.retention.ms")
IMPACT = Topic("compliance.impact.v1", ImpactEvent, "directive_id", 3, FOREVER)
COMMANDS = Topic("serving.commands.v1", ClusterCommand, "cluster_id", 6, WEEK_MS)
ACKS = Topic("serving.acks.v1", AckEvent, "cluster_id", 6, WEEK_MS)
# One copy of each affected set per (directive, revision, model, version), binary (SetChunk); commands reference
# it by partition and offsets, so it is kept as long as a directive may be in force or re-sent: forever.
SETS = Topic("serving.sets.v1", SetChunk, "directive_id", 6, FOREVER)
ENFORCEMENT = Topic("compliance.enforcement.v1", EnforcementEvent, "directive_id", 3, FOREVER)
NOTIFICATIONS = Topic("notifications.v1", NotificationEvent, "recipient", 6, FOREVER)
AUDIT = Topic("audit.checkpoints.v1", AuditCheckpoint, "ledger", 1, FOREVER)


def dead_letter_topic(service: str) -> Topic:
    """The dead-letter topic of one consuming service."""
    return Topic(f"dlq.{service}.v1", DeadLetter, "consumer", 1, FOREVER)


DATA_TOPICS: tuple[Topic, ...] = (
    DIRECTIVES,
    USERS,
    IMPACT,
    COMMANDS,
    SETS,
    ACKS,
    ENFORCEMENT,
    NOTIFICATIONS,
    AUDIT,
)
DEAD_LETTER_TOPICS: tuple[Topic, ...] = tuple(dead_letter_topic(s) for s in SERVICES)
ALL_TOPICS: tuple[Topic, ...] = DATA_TOPICS + DEAD_LETTER_TOPICS
BY_NAME: dict[str, Topic] = {t.name: t for t in ALL_TOPICS}

_ADAPTERS: dict[str, TypeAdapter] = {}


def _adapter(name: str) -> TypeAdapter:
    if name not in _ADAPTERS:
        _ADAPTERS[name] = TypeAdapter(BY_NAME[name].message)
    return _ADAPTERS[name]


def key_of(topic: Topic, message: Any) -> bytes:
    """The Kafka key of a message on a topic, from the catalogue's key field."""
    return str(getattr(message, topic.key)).encode()
