"""SIGKILL of each service (or of a broker, of the active controller, SIGSTOP of a broker past its session timeout)
right after a directive is issued, on the three-node cluster with the whole stack (real SMTP): a killed service is
restarted at once on its state folder, and the end state is a fault-free run's: the directive enforced, every agent
denying exactly the users the directives in force cover, one message per recipient at the SMTP server.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from devtools.broker import LocalCluster
from devtools.observe import TopicReader
from devtools.registry import population as registry_population
from devtools.registry.loader import load as load_registry
from devtools.registry.oracle import affected_users
from devtools.stack import Stack
from devtools.waiting import eventually
from shared.contracts.catalogue import ENFORCEMENT, USERS
from shared.contracts.directives import DirectiveScope
from shared.contracts.enforcement import DirectiveEnforced
from shared.runtime.kafka import records_to_end
from shared.runtime.settings import KafkaSettings
from shared.runtime.topics import apply_topics

pytestmark = [pytest.mark.cluster, pytest.mark.kafka]

USERS_N = 1_000
MODEL = "fable-5"  # served by every demo cluster
TIMEOUT = 180
SETTLE_S = 3.0  # a second copy of a notice still on its way arrives within this
# (process killed, the nationality its directive covers): a set of its own per test
KILLS = [
    (None, "CN"),  # no fault: the same checks hold without one
    ("intake", "IN"),
    ("impact", "DE"),
    ("enforcement", "BR"),
    ("notifier", "GB"),
    ("audit", "FR"),
    ("agent-eu-west", "MX"),
    ("broker-kill", "JP"),  # a node that is not the active controller, restarted once the checks passed
    ("controller-kill", "KR"),
    ("broker-pause", "CA"),
]
PAUSE_S = 12.0  # past broker.session.timeout.ms (9 s): the controller fences the paused node


@dataclass
class Run:
    stack: Stack
    nodes: LocalCluster
    registry: dict[int, dict] = field(default_factory=dict)
    in_force: set[int] = field(default_factory=set)  # users the directives issued so far deny MODEL to


@pytest.fixture(scope="module")
def run(kafka_dir: Path, kafka_secrets: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    with LocalCluster(kafka_dir.with_name(f"{kafka_dir.name}-cluster"), 3, secrets=kafka_secrets) as nodes:
        asyncio.run(prepare(nodes.bootstrap))
        stack = Stack(nodes.bootstrap, tmp_path_factory.mktemp("service-kills"), access=nodes.access)
        stack.start(timeout=240)
        try:
            yield Run(stack, nodes, asyncio.run(read_registry(nodes.bootstrap)))
        finally:
            stack.stop()


async def prepare(bootstrap: str) -> None:
    await apply_topics(KafkaSettings(bootstrap=bootstrap), replication=3, min_insync_replicas=2)
    await load_registry(bootstrap, registry_population.generate(USERS_N, seed=23))


async def read_registry(bootstrap: str) -> dict[int, dict]:
    users: dict[int, dict] = {}
    async for record in records_to_end(KafkaSettings(bootstrap=bootstrap), USERS, "tests-cluster-registry"):
        users[int(record.key)] = json.loads(record.value)
    return users


def body(directive_id: str, country: str) -> dict:
    """Consumers of one nationality lose MODEL (consumers only: each is told by email, none through a digest)."""
    return {
        "directive_id": directive_id,
        "title": "service killed right after issue",
        "scope": {
            "models": [MODEL],
            "unknown_attribute": "allow",
            "selector": {
                "kind": "all_of",
                "of": [
                    {"kind": "nationality", "any_of": [country]},
                    {"kind": "account_type", "any_of": ["consumer"]},
                ],
            },
            "enforcement_deadline_s": 120,
        },
    }


def covered(run: Run, directive: dict) -> set[int]:
    scope = DirectiveScope.model_validate(directive["scope"])
    return affected_users(scope.selector, run.registry.values(), scope.unknown_attribute)


def denied(run: Run) -> dict[str, set[int]]:
    """Cluster -> the users its agent denies MODEL to, asked as a gateway for every user of the registry."""
    checks = [{"user": user, "model": MODEL} for user in run.registry]
    answers = {}
    for cluster in run.stack.clusters:
        reply = httpx.post(
            f"{run.stack.agent(cluster.cluster_id).url}/v1/access:batch",
            json={"checks": checks},
            headers=run.stack.gateway,
            timeout=60,
        )
        reply.raise_for_status()
        answers[cluster.cluster_id] = {r["user"] for r in reply.json()["results"] if r["decision"] == "deny"}
    return answers


def notices(run: Run, directive_id: str) -> Counter[str]:
    """Idempotency key -> raw messages the SMTP server received with it for the directive (nothing deduplicated)."""
    assert run.stack.mailbox is not None
    return Counter(m.notice for m in list(run.stack.mailbox.received) if m.notice.startswith(f"{directive_id}:"))


@pytest.mark.parametrize(("killed", "country"), KILLS, ids=[k or "no-fault" for k, _ in KILLS])
async def test_a_service_killed_right_after_a_directive_is_issued_ends_as_a_fault_free_run(
    run: Run, killed: str | None, country: str
) -> None:
    directive = body(f"KILL-{killed or 'none'}-{country}", country)
    users = covered(run, directive)
    recipients = {u for u in users if MODEL in (run.registry[u].get("entitlements") or [])}
    assert recipients, "the registry has no consumer of this nationality entitled to the model: pick another"
    run.in_force |= users
    settings = KafkaSettings(bootstrap=run.nodes.bootstrap)
    heal: Callable[[], None] = nothing
    try:
        async with TopicReader(settings, ENFORCEMENT) as enforcement:
            await asyncio.to_thread(run.stack.issue, directive)
            if killed is not None:
                heal = await asyncio.to_thread(inject, run, killed)
            await enforcement.wait_for(
                lambda m: isinstance(m, DirectiveEnforced) and m.directive_id == directive["directive_id"],
                TIMEOUT,
                f"{directive['directive_id']} enforced",
            )

        expected = {f"{directive['directive_id']}:1:restricted:{u}" for u in recipients}
        await eventually(lambda: expected <= set(notices(run, directive["directive_id"])), "every notice", TIMEOUT)
        await asyncio.sleep(SETTLE_S)
        copies = notices(run, directive["directive_id"])
        assert set(copies) == expected
        assert {key: n for key, n in copies.items() if n > 1} == {}, "a recipient got more than one message"
        answers = await asyncio.to_thread(denied, run)
        assert answers == {c.cluster_id: run.in_force for c in run.stack.clusters}
    finally:
        await asyncio.to_thread(heal)


def inject(run: Run, fault: str) -> Callable[[], None]:
    """Inject the fault; returns what brings a killed node back (after the checks, as the benchmark does)."""
    nodes = run.nodes
    if fault == "controller-kill":
        leader = nodes.active_controller()
        nodes.kill(leader)
        return lambda: nodes.restart(leader)
    follower = next(n for n in range(1, nodes.nodes + 1) if n != nodes.active_controller())
    if fault == "broker-kill":
        nodes.kill(follower)
        return lambda: nodes.restart(follower)
    if fault == "broker-pause":
        nodes.freeze(follower)
        try:
            time.sleep(PAUSE_S)
        finally:
            nodes.thaw(follower)
        return nothing
    run.stack.kill_and_restart(fault)
    run.stack.wait_ready(TIMEOUT)
    return nothing


def nothing() -> None:
    """No node to bring back."""
