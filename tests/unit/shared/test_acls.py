"""The ACLs generated from the catalogue give each role exactly what its service uses, and agree with the code."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from devtools.broker import DEMO_AGENTS, ROOT
from devtools.stack import DEMO_CLUSTERS
from services.agent.settings import AgentSettings
from services.audit.settings import AuditSettings
from services.enforcement import app as enforcement_app
from services.impact import app as impact_app
from services.notifier.settings import NotifierSettings
from shared.contracts.catalogue import ALL_TOPICS, AUDIT, COMMANDS, DIRECTIVES, SETS, USERS
from shared.runtime.acls import (
    ADMIN,
    TOOLING,
    agent_group,
    agent_role,
    bindings,
    group_of,
    principals,
    service_roles,
)


def allowed(principal: str, operation: str, resource: str = "TOPIC") -> set[str]:
    return {
        b.name
        for b in bindings(DEMO_AGENTS)
        if (b.principal, b.operation, b.resource) == (principal, operation, resource)
    }


def writers(topic: str) -> set[str]:
    return {b.principal for b in bindings(DEMO_AGENTS) if (b.name, b.operation) == (topic, "WRITE")}


def readers(topic: str) -> set[str]:
    return {b.principal for b in bindings(DEMO_AGENTS) if (b.name, b.operation) == (topic, "READ")}


def test_every_group_in_the_acls_is_the_one_the_service_uses(tmp_path: Path) -> None:
    assert impact_app.GROUP == group_of("impact")
    assert enforcement_app.GROUP == group_of("enforcement")
    assert NotifierSettings(state_dir=tmp_path).group_id == group_of("notifier")
    assert AuditSettings(state_dir=tmp_path).group == group_of("audit")
    assert AgentSettings(cluster_id="us-east", state_dir=tmp_path).group == agent_group("us-east")
    replica = AgentSettings(cluster_id="us-east", replica_id="agent-us-east-1", state_dir=tmp_path)
    assert replica.group == agent_group("us-east", "agent-us-east-1")


def test_commands_are_written_by_enforcement_and_directives_by_intake_only() -> None:
    assert writers(COMMANDS.name) == {"enforcement"}
    assert writers(SETS.name) == {"enforcement"}
    assert readers(SETS.name) >= {"agent-us-east", "audit"}
    assert writers(DIRECTIVES.name) == {"intake"}
    assert COMMANDS.name not in allowed("notifier", "WRITE")


def test_an_agent_reads_commands_in_its_own_group_and_the_set_copies_without_one() -> None:
    role = agent_role("us-east")
    assert [t.name for t in role.reads] == [COMMANDS.name, SETS.name]
    assert role.groups == (agent_group("us-east"),)
    assert allowed("agent-us-east", "READ", "GROUP") == {"countermand-agent-us-east", "countermand-agent-us-east."}


def test_an_agents_replicas_read_in_groups_under_its_own_prefix_that_no_other_cluster_shares() -> None:
    [prefixed] = [b for b in agent_role("us-east").bindings() if b.pattern == "PREFIXED"]
    assert (prefixed.resource, prefixed.operation, prefixed.name) == ("GROUP", "READ", "countermand-agent-us-east.")
    assert agent_group("us-east", "agent-us-east-0").startswith(prefixed.name)
    assert not agent_group("us-east-2").startswith(prefixed.name)
    assert not agent_group("us-east-2", "r0").startswith(prefixed.name)
    assert [b.pattern for role in service_roles() for b in role.bindings()].count("PREFIXED") == 0


def test_each_service_writes_its_own_dead_letter_topic_only() -> None:
    for role in service_roles():
        dead = {t.name for t in role.writes if t.name.startswith("dlq.")}
        assert dead == {f"dlq.{role.principal}.v1"}, role.principal


def test_audit_reads_every_topic_but_its_checkpoints_which_it_alone_writes() -> None:
    assert allowed("audit", "READ") == {t.name for t in ALL_TOPICS} - {AUDIT.name}
    assert writers(AUDIT.name) == {"audit"}
    assert writers(USERS.name) == set()  # the registry is the loader's (tooling, by wildcard)


def test_tooling_cannot_change_acls_and_admin_needs_no_acl() -> None:
    tooling = {(b.resource, b.operation) for b in bindings(DEMO_AGENTS) if b.principal == TOOLING}
    assert ("CLUSTER", "ALTER") not in tooling and ("CLUSTER", "ALL") not in tooling
    assert not [b for b in bindings(DEMO_AGENTS) if b.principal == ADMIN]


def test_the_local_broker_creates_a_user_for_every_principal_of_the_demo() -> None:
    spec = importlib.util.spec_from_file_location("kafkasecurity", ROOT / "deploy" / "kafka" / "kafkasecurity.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert [module.ADMIN, *module.DEMO_USERS] == principals(DEMO_AGENTS)
    assert tuple(c.cluster_id for c in DEMO_CLUSTERS) == DEMO_AGENTS


def test_the_console_reads_what_it_shows_and_writes_nothing() -> None:
    assert allowed("console", "READ") == {
        DIRECTIVES.name,
        "compliance.enforcement.v1",
        "serving.acks.v1",
        AUDIT.name,
    }
    assert allowed("console", "WRITE") == set() and allowed("console", "READ", "GROUP") == set()
