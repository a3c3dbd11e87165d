"""Who may do what on Kafka: one principal per role and exactly the ACLs it needs, derived from the topic catalogue.

Pure data (no I/O): `bindings(agents)` is what `countermand acls apply` puts on the broker (through
shared.runtime.acl_requests) and `countermand acls show` prints. Each service reads and writes the topics its
app.py subscribes and publishes to, uses its own consumer group, and writes its own dead-letter topic (intake also
writes in transactions: Write on transactional ids); an agent
reads the commands topic (its partition) in its cluster's group, or as one of the cluster's replicas in a group named
after it (`<cluster group>.<replica id>`: a prefixed ACL), writes acks, and can touch no other group.
Read and Write imply Describe (metadata, offsets of the topic, a group's committed offsets); a producer's
idempotence needs Write on a topic, not IdempotentWrite on the cluster (KIP-679).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from shared.contracts.catalogue import (
    ACKS,
    AUDIT,
    COMMANDS,
    DATA_TOPICS,
    DEAD_LETTER_TOPICS,
    DIRECTIVES,
    ENFORCEMENT,
    IMPACT,
    NOTIFICATIONS,
    SETS,
    USERS,
    Topic,
    dead_letter_topic,
)

ADMIN = "admin"  # super user of the broker (super.users): applies ACLs; no ACL of its own
TOOLING = "tooling"  # the operator's CLI, the topics job, the registry loader and the tests: no ACL changes
CORE = ("intake", "impact", "enforcement", "notifier", "audit")
CONSOLE = "console"  # the web console: reads what it shows, writes nothing, uses no group
WILDCARD = "*"


@dataclass(frozen=True, order=True)
class AclBinding:
    """One ALLOW rule: the principal may do `operation` on the resource (a literal name, `*` for every one, or with
    pattern PREFIXED every name starting with `name`)."""

    principal: str  # a SCRAM user name; Kafka's principal is User:<name>
    resource: str  # TOPIC, GROUP, CLUSTER, TRANSACTIONAL_ID
    name: str
    operation: str  # READ, WRITE, DESCRIBE, CREATE, ALTER, ALTER_CONFIGS, DESCRIBE_CONFIGS, IDEMPOTENT_WRITE, ALL
    pattern: str = "LITERAL"  # or PREFIXED

    def __str__(self) -> str:
        prefixed = "*" if self.pattern == "PREFIXED" else ""
        return f"User:{self.principal} {self.operation} {self.resource}:{self.name}{prefixed}"


@dataclass(frozen=True)
class Role:
    """What one principal reads, writes and which consumer groups it uses."""

    principal: str
    reads: tuple[Topic, ...] = ()
    writes: tuple[Topic, ...] = ()
    groups: tuple[str, ...] = ()
    transactional_ids: tuple[str, ...] = ()
    group_prefixes: tuple[str, ...] = ()  # every group whose name starts so

    def bindings(self) -> list[AclBinding]:
        found = [AclBinding(self.principal, "TOPIC", t.name, "READ") for t in self.reads]
        found += [AclBinding(self.principal, "TOPIC", t.name, "WRITE") for t in self.writes]
        found += [AclBinding(self.principal, "GROUP", g, "READ") for g in self.groups]
        found += [AclBinding(self.principal, "GROUP", g, "READ", "PREFIXED") for g in self.group_prefixes]
        found += [AclBinding(self.principal, "TRANSACTIONAL_ID", t, "WRITE") for t in self.transactional_ids]
        return found


def group_of(service: str) -> str:
    """The consumer group of a core service (its settings' default; a service's tests check they agree)."""
    return f"countermand-{service}"


def agent_principal(cluster_id: str) -> str:
    return f"agent-{cluster_id}"


def agent_group(cluster_id: str, replica_id: str = "") -> str:
    """The consumer group of one cluster's agent or of one replica of it (AgentSettings.group of the agent)."""
    single = f"countermand-agent-{cluster_id}"
    return f"{single}.{replica_id}" if replica_id else single


def recorded_topics() -> tuple[Topic, ...]:
    """What the audit records: every topic but its own checkpoints."""
    return tuple(t for t in DATA_TOPICS + DEAD_LETTER_TOPICS if t is not AUDIT)


def service_roles() -> list[Role]:
    """The core services, each with its dead-letter topic and (but intake) its group."""
    dlq = dead_letter_topic
    return [
        # Intake publishes directive events in transactions, one transactional id per instance (named after it).
        Role("intake", reads=(DIRECTIVES,), writes=(DIRECTIVES, dlq("intake")), transactional_ids=(WILDCARD,)),
        Role("impact", (DIRECTIVES, USERS, IMPACT), (IMPACT, dlq("impact")), (group_of("impact"),)),
        Role(
            "enforcement", (IMPACT, ACKS), (COMMANDS, SETS, ENFORCEMENT, dlq("enforcement")), (group_of("enforcement"),)
        ),
        Role("notifier", (IMPACT, ENFORCEMENT, USERS), (NOTIFICATIONS, dlq("notifier")), (group_of("notifier"),)),
        Role("audit", recorded_topics(), (AUDIT, dlq("audit")), (group_of("audit"),)),
    ]


def console_role() -> Role:
    """The console: a group-less reader of the directives, enforcement status, acks/heartbeats and audit checkpoints
    it shows (it acts only through the other services' HTTP APIs, so it writes no topic and has no dead-letter
    topic)."""
    return Role(CONSOLE, reads=(DIRECTIVES, ENFORCEMENT, ACKS, AUDIT))


def agent_role(cluster_id: str) -> Role:
    """One cluster's agent: its commands (the topic; it assigns its own partition), the set copies they reference
    (read by assign and seek, no group), acks, its group and its replicas' groups only (a replica's id is not known
    in advance: the prefix ends with the separator, so that no other cluster's group starts with it)."""
    return Role(
        agent_principal(cluster_id),
        (COMMANDS, SETS),
        (ACKS, dead_letter_topic("agent")),
        (agent_group(cluster_id),),
        group_prefixes=(agent_group(cluster_id) + ".",),
    )


def tooling_bindings() -> list[AclBinding]:
    """Create and align topics, read and write any topic and group, in transactions too (loaders, status, tests,
    which run services under this principal); never ACLs."""
    on_topics = ("ALL",)
    on_cluster = ("CREATE", "DESCRIBE", "DESCRIBE_CONFIGS")
    return (
        [AclBinding(TOOLING, "TOPIC", WILDCARD, op) for op in on_topics]
        + [AclBinding(TOOLING, "GROUP", WILDCARD, "ALL")]
        + [AclBinding(TOOLING, "TRANSACTIONAL_ID", WILDCARD, "WRITE")]
        + [AclBinding(TOOLING, "CLUSTER", "kafka-cluster", op) for op in on_cluster]
    )


def principals(agents: Iterable[str]) -> list[str]:
    """Every SCRAM user a broker needs for these agent clusters, admin first."""
    return [ADMIN, TOOLING, *CORE, CONSOLE, *(agent_principal(c) for c in agents)]


def bindings(agents: Iterable[str]) -> list[AclBinding]:
    """Every ACL of the roles, sorted: the services', the console's, one agent role per cluster id, and tooling's."""
    roles = service_roles() + [console_role()] + [agent_role(c) for c in agents]
    return sorted({b for role in roles for b in role.bindings()} | set(tooling_bindings()))
