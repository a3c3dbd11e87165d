"""The mission end to end: six services as separate processes on a real Kafka broker.

Checks against an oracle written here, independently of the services: the affected set equals a
brute-force evaluation of the registry as recorded; every cluster acknowledges; agents deny exactly
the affected pairs; one notice per recipient; a lift restores exactly (a second, overlapping
directive keeps its own users denied); every directive and lift is proposed by one person and approved by
another, and the events name both; the audit chain verifies; every message every service put on
every topic parses with the contract.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from pyroaring import BitMap

from devtools.broker import LocalBroker
from devtools.observe import TopicReader
from devtools.registry import population as registry_population
from devtools.registry.loader import load as load_registry
from devtools.registry.oracle import affected_users
from devtools.scenarios import OVERLAP, mission_body
from devtools.stack import Stack
from shared.contracts.bitmaps import decode_bitmap, set_digest
from shared.contracts.catalogue import COMMANDS, DATA_TOPICS, DIRECTIVES, ENFORCEMENT, IMPACT, SETS, USERS
from shared.contracts.directives import DirectiveIssued, DirectiveLifted, DirectiveProposed, DirectiveScope
from shared.contracts.enforcement import DirectiveEnforced
from shared.contracts.impact import AffectedSetChunk, ImpactAssessed
from shared.contracts.set_copies import decode_chunk
from shared.runtime.kafka import records_to_end
from shared.runtime.settings import KafkaSettings
from shared.runtime.topics import apply_topics

USERS_N = 4_000
MISSION = mission_body()
TIMEOUT = 180


@dataclass
class Run:
    """What the mission run observed, shared by the assertions below."""

    stack: Stack
    registry: dict[int, dict | None] = field(default_factory=dict)
    assessed: dict[tuple[str, str], ImpactAssessed] = field(default_factory=dict)
    sets: dict[tuple[str, str], dict[str, BitMap]] = field(default_factory=dict)
    enforced: dict[tuple[str, str], DirectiveEnforced] = field(default_factory=dict)
    access_during: dict[str, set[int]] = field(default_factory=dict)
    access_after: dict[str, set[int]] = field(default_factory=dict)


async def _read_registry(bootstrap: str, offsets: dict[int, int]) -> dict[int, dict | None]:
    """The registry exactly as of the recorded offsets: the last record per user before them."""
    users: dict[int, dict | None] = {}
    async for record in records_to_end(
        KafkaSettings(bootstrap=bootstrap), USERS, "tests-e2e-registry", until={int(p): o for p, o in offsets.items()}
    ):
        users[int(record.key)] = None if record.value is None else json.loads(record.value)
    return users


async def _collect(
    bootstrap: str, directive_id: str, action: str
) -> tuple[ImpactAssessed, dict[str, BitMap], DirectiveEnforced]:
    async with TopicReader(bootstrap, IMPACT) as impact, TopicReader(bootstrap, ENFORCEMENT) as enforcement:
        assessed = await impact.wait_for(
            lambda m: isinstance(m, ImpactAssessed) and m.directive_id == directive_id and m.action == action,
            TIMEOUT,
            f"{action} assessment of {directive_id}",
        )

        def chunks(messages: list) -> list[AffectedSetChunk]:
            return [
                m
                for m in messages
                if isinstance(m, AffectedSetChunk)
                and m.directive_id == directive_id
                and m.revision == assessed.revision
                and m.action == action
            ]

        await impact.drain(lambda ms: len({c.chunk for c in chunks(ms)}) == assessed.chunks, TIMEOUT, "chunks")
        sets: dict[str, BitMap] = {}
        for chunk in {c.chunk: c for c in chunks(impact.messages)}.values():
            sets[chunk.model] = sets.get(chunk.model, BitMap()) | decode_bitmap(chunk.users)
        enforced = await enforcement.wait_for(
            lambda m: (
                isinstance(m, DirectiveEnforced)
                and m.directive_id == directive_id
                and m.action == action
                and m.revision == assessed.revision
            ),
            TIMEOUT,
            f"{action} enforcement of {directive_id}",
        )
    return assessed, sets, enforced


def _denied(stack: Stack, user_ids: list[int]) -> dict[str, set[int]]:  # asked as a gateway, by API key
    """(cluster, model) -> users the agent denies, asked through the batch access endpoint."""
    denied: dict[str, set[int]] = {}
    for cluster in stack.clusters:
        for model in cluster.models:
            checks = [{"user": u, "model": model} for u in user_ids]
            reply = httpx.post(
                f"{stack.agent(cluster.cluster_id).url}/v1/access:batch",
                json={"checks": checks},
                headers=stack.gateway,
                timeout=60,
            )
            reply.raise_for_status()
            denied[f"{cluster.cluster_id}/{model}"] = {
                r["user"] for r in reply.json()["results"] if r["decision"] == "deny"
            }
    return denied


def _issue(stack: Stack, body: dict) -> None:
    stack.issue(body, proposer="alice", approver="bob")  # four eyes: nothing is issued on one person's word


def _lift(stack: Stack, directive_id: str) -> None:
    stack.lift(directive_id, "test", proposer="carol", approver="bob")


@pytest.fixture(scope="module")
def e2e_kafka(kafka_dir: Path, kafka_secrets: Path) -> LocalBroker:
    """A broker of its own, so the registry holds exactly this scenario's users."""
    with LocalBroker(kafka_dir.with_name("e2e-kafka"), secrets=kafka_secrets) as broker:
        yield broker


@pytest.fixture(scope="module")
async def run(e2e_kafka: LocalBroker, tmp_path_factory: pytest.TempPathFactory) -> Run:
    bootstrap = e2e_kafka.bootstrap
    await apply_topics(KafkaSettings(bootstrap=bootstrap))
    stack = Stack(bootstrap, tmp_path_factory.mktemp("stack"), access=e2e_kafka.access)
    await asyncio.to_thread(stack.start)
    try:
        result = Run(stack)
        await load_registry(bootstrap, registry_population.generate(USERS_N, seed=11))
        user_ids = list(range(1, USERS_N + 1))
        for body in (MISSION, OVERLAP):
            await asyncio.to_thread(_issue, stack, body)
        for body in (MISSION, OVERLAP):
            key = (body["directive_id"], "restrict")
            result.assessed[key], result.sets[key], result.enforced[key] = await _collect(bootstrap, *key)
        result.registry = await _read_registry(
            bootstrap, result.assessed[(MISSION["directive_id"], "restrict")].registry_offsets
        )
        result.access_during = await asyncio.to_thread(_denied, stack, user_ids)
        await asyncio.to_thread(_lift, stack, MISSION["directive_id"])
        key = (MISSION["directive_id"], "lift")
        result.assessed[key], result.sets[key], result.enforced[key] = await _collect(bootstrap, *key)
        result.access_after = await asyncio.to_thread(_denied, stack, user_ids)
        yield result
    finally:
        await asyncio.to_thread(stack.stop)


def _oracle(run: Run, body: dict) -> set[int]:
    scope = DirectiveScope.model_validate(body["scope"])
    live = [record for record in run.registry.values() if record is not None]
    return affected_users(scope.selector, live, scope.unknown_attribute)


def test_affected_set_equals_the_brute_force_oracle(run: Run) -> None:
    for body in (MISSION, OVERLAP):
        key = (body["directive_id"], "restrict")
        expected = _oracle(run, body)
        assert expected, "the scenario must affect someone"
        assessed, sets = run.assessed[key], run.sets[key]
        assert set(sets) == set(body["scope"]["models"])
        for model, users in sets.items():
            assert set(users) == expected, model
            assert assessed.model_digests[model] == set_digest(BitMap(expected))
        assert assessed.affected_users == len(expected)


def test_every_cluster_acknowledged_with_the_expected_digest(run: Run) -> None:
    enforced = run.enforced[(MISSION["directive_id"], "restrict")]
    assert set(enforced.clusters) == {c.cluster_id for c in run.stack.clusters}
    assert {p.state for p in enforced.clusters.values()} == {"applied"}


def test_agents_deny_exactly_the_affected_pairs(run: Run) -> None:
    mission, overlap = _oracle(run, MISSION), _oracle(run, OVERLAP)
    for cluster_model, denied in run.access_during.items():
        model = cluster_model.split("/")[1]
        expected = set()
        if model in MISSION["scope"]["models"]:
            expected |= mission
        if model in OVERLAP["scope"]["models"]:
            expected |= overlap
        assert denied == expected, cluster_model


def test_lift_restores_exactly_and_keeps_the_overlapping_directive(run: Run) -> None:
    mission, overlap = _oracle(run, MISSION), _oracle(run, OVERLAP)
    for cluster_model, denied in run.access_after.items():
        model = cluster_model.split("/")[1]
        assert denied == (overlap if model == "fable-5" else set()), cluster_model
    restored = run.sets[(MISSION["directive_id"], "lift")]
    assert set(restored["fable-5"]) == mission - overlap
    assert set(restored["mythos-5"]) == mission


def test_one_notice_per_recipient_and_action_naming_only_what_they_lost(run: Run) -> None:
    mission, overlap = _oracle(run, MISSION), _oracle(run, OVERLAP)
    held = {u: set(record["entitlements"]) for u, record in run.registry.items() if record is not None}
    models = set(MISSION["scope"]["models"])
    expected = {("restricted", u) for u in mission if held[u] & models}
    expected |= {("restored", u) for u in mission if held[u] & (models - {"fable-5"} if u in overlap else models)}
    assert run.stack.mailbox is not None

    def seen() -> list[tuple[str, int]]:
        keys = [m.notice.split(":") for m in run.stack.mailbox.unique().values()]  # type: ignore[union-attr]
        return [(k[2], int(k[3])) for k in keys if k[0] == MISSION["directive_id"]]

    for _ in range(600):
        if len(seen()) >= len(expected):
            break
        time.sleep(0.2)
    notices = seen()
    assert len(notices) == len(set(notices)), "a recipient was notified twice"
    assert set(notices) == expected
    assert len(expected) < 2 * len(mission)  # some covered users held none of the models: no notice for them


def test_audit_chain_verifies_and_reports_the_timeline(run: Run) -> None:
    ledger = str(run.stack.ledger)
    env = {**os.environ, "COUNTERMAND_KAFKA_BOOTSTRAP": run.stack.bootstrap}
    for _ in range(30):  # verify holds the ledger against the topics: the audit may still be catching up
        verify = subprocess.run(
            [sys.executable, "-m", "cli.main", "audit", "verify", "--ledger", ledger],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        if verify.returncode == 0:
            break
        time.sleep(1)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    report = subprocess.run(
        [sys.executable, "-m", "cli.main", "audit", "report", MISSION["directive_id"], "--ledger", ledger],
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "COLUMNS": "250"},
    )
    assert report.returncode == 0, report.stdout + report.stderr
    # The timeline shows what was put in force and confirmed; who proposed and approved is checked on the
    # events themselves (next test).
    for event in ("DirectiveIssued", "ImpactAssessed", "DirectiveEnforced", "DirectiveLifted"):
        assert event in report.stdout


async def test_the_directive_events_name_who_proposed_and_who_approved(run: Run) -> None:
    events = [
        DIRECTIVES.adapter.validate_json(r.value)
        async for r in records_to_end(KafkaSettings(bootstrap=run.stack.bootstrap), DIRECTIVES, "e2e-accountability")
        if r.key == MISSION["directive_id"].encode()
    ]
    issued = next(e for e in events if isinstance(e, DirectiveIssued))
    lifted = next(e for e in events if isinstance(e, DirectiveLifted))
    assert (issued.proposed_by, issued.approved_by, issued.emergency) == ("alice", ["bob"], False)
    assert (lifted.proposed_by, lifted.approved_by, lifted.reason) == ("carol", ["bob"], "test")
    assert [e.type for e in events if isinstance(e, DirectiveProposed)] == ["DirectiveProposed"] * 2


async def test_assessments_and_commands_name_who_caused_them_and_the_audit_agrees(run: Run) -> None:
    settings, directive = KafkaSettings(bootstrap=run.stack.bootstrap), MISSION["directive_id"]
    causes: dict[tuple[str, str], set] = {}
    for topic in (IMPACT, COMMANDS):
        async for record in records_to_end(settings, topic, "e2e-caused-by"):
            if record.value is None:
                continue
            message = topic.adapter.validate_json(record.value)
            if getattr(message, "directive_id", None) == directive and hasattr(message, "caused_by"):
                action = "lift" if message.type == "LiftCommand" else getattr(message, "action", "restrict")
                if message.type in ("ImpactAssessed", "RestrictCommand", "LiftCommand"):
                    who = message.caused_by
                    causes.setdefault((message.type, action), set()).add(
                        (who.proposed_by, tuple(who.approved_by), who.emergency) if who else None
                    )
    assert (
        causes[("ImpactAssessed", "restrict")]
        == causes[("RestrictCommand", "restrict")]
        == {("alice", ("bob",), False)}
    )
    assert causes[("ImpactAssessed", "lift")] == causes[("LiftCommand", "lift")] == {("carol", ("bob",), False)}
    report = subprocess.run(
        [sys.executable, "-m", "cli.main", "audit", "report", directive, "--ledger", str(run.stack.ledger)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COUNTERMAND_KAFKA_BOOTSTRAP": run.stack.bootstrap, "COLUMNS": "250"},
    )
    assert report.returncode == 0, report.stdout + report.stderr
    groups = [line for line in report.stdout.splitlines() if " commands of revision " in line]
    assert any(g.startswith("restrict ") and g.endswith(": proposed by alice, approved by bob") for g in groups)
    assert any(g.startswith("lift ") and g.endswith(": proposed by carol, approved by bob") for g in groups)
    assert "cause_mismatch" not in report.stderr


async def test_every_message_on_every_topic_parses_with_its_contract(run: Run) -> None:
    counts: dict[str, int] = {}
    for topic in DATA_TOPICS:
        seen = 0
        async for record in records_to_end(KafkaSettings(bootstrap=run.stack.bootstrap), topic, "e2e-contracts"):
            if record.value is not None and topic is SETS:
                decode_chunk(record.value)  # binary set copies: raises on any break of the layout
                seen += 1
            elif record.value is not None:
                topic.adapter.validate_json(record.value)  # raises on any contract break
                seen += 1
        counts[topic.name] = seen
    produced = {name for name, n in counts.items() if n}
    assert {
        IMPACT.name,
        ENFORCEMENT.name,
        USERS.name,
        "compliance.directives.v1",
        "serving.commands.v1",
        SETS.name,
        "serving.acks.v1",
        "notifications.v1",
    } <= produced, counts
