"""Forged, altered and replayed records on a running stack, produced by a principal with produce rights (the
test's `tooling` login): refused where they would act, reported, and access unchanged. A cluster made to hold
the wrong state by a validly signed wrong command is marked drifted and corrected within a few heartbeats.
Forged acks and heartbeats never make a cluster count as applied, and the audit reports them as forgeries.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from pyroaring import BitMap

from devtools.broker import LocalBroker
from devtools.observe import TopicReader
from devtools.registry import population as registry_population
from devtools.registry.loader import load as load_registry
from devtools.stack import Stack
from devtools.waiting import eventually
from shared.contracts.bitmaps import encode_bitmap
from shared.contracts.catalogue import ACKS, COMMANDS, DIRECTIVES, ENFORCEMENT, dead_letter_topic, key_of
from shared.contracts.deadletter import DeadLetter
from shared.contracts.enforcement import DirectiveEnforced, EnforcementProgressed
from shared.contracts.envelope import utc_now
from shared.contracts.serving import (
    AgentHeartbeat,
    CommandApplied,
    CommandFailed,
    HeldDirective,
    LiftCommand,
    RestrictCommand,
)
from shared.runtime.auth import Role
from shared.runtime.kafka import producing, records_to_end
from shared.runtime.record_signing import encoded, signed_headers
from shared.runtime.settings import KafkaSettings
from shared.runtime.signing import Signer
from shared.runtime.topics import apply_topics

pytestmark = pytest.mark.kafka

USERS_N = 600
DIRECTIVE = "FORGE-1"
REPLAYED = "FORGE-REPLAY"
ACKED = "FORGE-ACK"
HEARTBEAT_S = 2.0  # the agents' default heartbeat interval
TIMEOUT = 180


def directive_body(directive_id: str = DIRECTIVE) -> dict:
    return {
        "directive_id": directive_id,
        "title": "forgery check",
        "scope": {
            "models": ["fable-5"],
            "selector": {"kind": "nationality", "any_of": ["CN"]},
            "enforcement_deadline_s": 120,
        },
    }


def denied(stack: Stack, cluster: str) -> set[int]:
    """Users the cluster's agent denies fable-5, asked as a gateway."""
    checks = [{"user": u, "model": "fable-5"} for u in range(1, USERS_N + 1)]
    reply = httpx.post(
        f"{stack.agent(cluster).url}/v1/access:batch", json={"checks": checks}, headers=stack.gateway, timeout=60
    )
    reply.raise_for_status()
    return {r["user"] for r in reply.json()["results"] if r["decision"] == "deny"}


async def produce(settings: KafkaSettings, topic: str, key: bytes, value: bytes, headers: list | None = None) -> None:
    async with producing(settings, "forger", linger_ms=0) as producer:
        await producer.send_and_wait(topic, value, key=key, headers=headers or [("content-type", b"application/json")])


async def refusal(settings: KafkaSettings, event_id: str) -> CommandFailed:
    """The agent's report of refusing the command `event_id`."""
    async with TopicReader(settings, ACKS) as acks:
        return await acks.wait_for(
            lambda m: isinstance(m, CommandFailed) and m.causation_id == event_id, TIMEOUT, f"refusal of {event_id}"
        )


async def enforced(settings: KafkaSettings, action: str) -> DirectiveEnforced:
    async with TopicReader(settings, ENFORCEMENT) as status:
        return await status.wait_for(
            lambda m: isinstance(m, DirectiveEnforced) and m.directive_id == DIRECTIVE and m.action == action,
            TIMEOUT,
            f"{action} of {DIRECTIVE}",
        )


async def first_record(settings: KafkaSettings, topic, wanted) -> object:
    async for record in records_to_end(settings, topic, "forgery-check"):
        if record.value is not None and wanted(record):
            return record
    raise AssertionError(f"no such record on {topic.name}")


def restrict_all(cluster: str, event_id: str) -> RestrictCommand:
    return RestrictCommand(
        event_id=event_id,
        producer="enforcement",
        cluster_id=cluster,
        directive_id=DIRECTIVE,
        revision=1,
        model="fable-5",
        chunk=0,
        chunks=1,
        users=encode_bitmap(BitMap(range(1, USERS_N + 1))),
        expected_digest="forged",
    )


def countermand(stack: Stack, *args: str) -> subprocess.CompletedProcess:
    env = {
        **stack.base_env(),
        "COUNTERMAND_AUDIT_RECORD_KEYS": json.dumps(stack.record_key_sets()),
        "COLUMNS": "250",
    }
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "audit", *args], capture_output=True, text=True, timeout=300, env=env
    )


async def audit_flags_the_forgeries(
    stack: Stack, folder: Path, cluster: str, when: str, denied_before: set[int]
) -> None:
    """The report (JSON, HTML, timeline), verify and explain over HTTP each show the forged records."""
    report_json, report_html = folder / "report.json", folder / "report.html"
    done = await asyncio.to_thread(
        countermand, stack, "report", DIRECTIVE, "--json", str(report_json), "--html", str(report_html)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(report_json.read_text())
    forged = {(f["event"], f["reason"].split(" (")[0]) for f in report["forgeries"]}
    assert forged == {
        ("LiftCommand", "unsigned"),
        ("RestrictCommand", "bad signature"),
        ("DirectiveIssued", "bad signature"),  # intake's record with one byte changed
    }, report["forgeries"]
    assert sum(d["kind"] == "forged_record" for d in report["discrepancies"]) == 3
    assert any(line["forged"] and line["event"] == "LiftCommand" for line in report["timeline"])
    assert "forged records" in done.stderr
    healed = [d for d in report["discrepancies"] if d["kind"] == "drift_healed"]
    assert healed and healed[0]["detail"].startswith("restrict: drift: holds")
    page = report_html.read_text()
    assert 'data-testid="forgeries" class="bad">3<' in page and page.count('data-testid="forged-line"') == 3

    def verified() -> subprocess.CompletedProcess | None:
        done = countermand(stack, "verify", "--ledger", str(stack.ledger), "--no-kafka")
        return done if done.stderr.count("\n  seq ") >= 3 else None

    checked = await eventually(lambda: asyncio.to_thread(verified), what="verify listing the forged records")
    forged_lines = [line for line in checked.stderr.splitlines() if line.startswith("  seq ")]
    reasons = sorted(line.rsplit(": ", 1)[1].split(" (")[0] for line in forged_lines)
    assert reasons == ["bad signature", "bad signature", "unsigned"], checked.stderr
    assert any("compliance.directives.v1" in line for line in forged_lines)

    user = min(denied_before)
    auditor = stack.token("auditor", Role.AUDITOR)

    async def explained() -> dict | None:
        async with httpx.AsyncClient(base_url=stack.service("audit").url, timeout=30) as client:
            question = {"user": user, "model": "fable-5", "at": when}
            assert (await client.get("/v1/explain", params=question)).status_code == 401
            answer = await client.get("/v1/explain", params=question, headers=auditor)
        assert answer.status_code == 200, answer.text
        document = answer.json()
        return document if len(document["forged_records_ignored"]) >= 3 else None

    answer = await eventually(explained, what="the audit's explain naming the forgeries")
    assert {f["reason"].split(" (")[0] for f in answer["forged_records_ignored"]} == {"unsigned", "bad signature"}
    assert [d["revision"] for d in answer["directives"]] == [1]  # the genuine revision, not the altered copy
    # After the forged lift and before the real one the user was denied, on the signed evidence alone.
    assert answer["clusters"][cluster]["decision"] == "denied" and answer["clusters"][cluster]["by"] == [DIRECTIVE]
    lift = next(f for f in answer["forged_records_ignored"] if f["type"] == "LiftCommand")
    assert lift["topic"] == COMMANDS.name and lift["reason"] == "unsigned"


@pytest.fixture(scope="module")
def forgery_kafka(kafka_dir: Path, kafka_secrets: Path) -> LocalBroker:
    with LocalBroker(kafka_dir.with_name("forgery-kafka"), secrets=kafka_secrets) as broker:
        yield broker


async def test_forged_altered_replayed_and_drifted(
    forgery_kafka: LocalBroker, tmp_path_factory: pytest.TempPathFactory
) -> None:
    settings = KafkaSettings(bootstrap=forgery_kafka.bootstrap)
    await apply_topics(settings)
    stack = Stack(forgery_kafka.bootstrap, tmp_path_factory.mktemp("forgery-stack"), access=forgery_kafka.access)
    await load_registry(forgery_kafka.bootstrap, registry_population.generate(USERS_N, seed=3))
    await asyncio.to_thread(stack.start)
    try:
        cluster = next(c.cluster_id for c in stack.clusters if "fable-5" in c.models)
        await asyncio.to_thread(stack.issue, directive_body())
        await enforced(settings, "restrict")
        before = await asyncio.to_thread(denied, stack, cluster)
        assert before

        # A forged lift, unsigned, and a forged all-ids restriction signed by a key nobody trusts.
        lift = LiftCommand(producer="enforcement", cluster_id=cluster, directive_id=DIRECTIVE, revision=1)
        await produce(settings, COMMANDS.name, cluster.encode(), lift.model_dump_json().encode())
        assert (await refusal(settings, lift.event_id)).reason == "refused: unsigned"
        forged = restrict_all(cluster, "forged-restrict-all")
        value = forged.model_dump_json().encode()
        headers = Signer.generate("enforcement-dev").headers(COMMANDS.name, cluster.encode(), value)
        await produce(settings, COMMANDS.name, cluster.encode(), value, [(k, v.encode()) for k, v in headers.items()])
        assert (await refusal(settings, forged.event_id)).reason.startswith("refused: bad signature")
        assert await asyncio.to_thread(denied, stack, cluster) == before

        # Intake's signed DirectiveIssued with one byte changed: impact dead-letters it, naming the signature.
        issued = await first_record(settings, DIRECTIVES, lambda r: b'"DirectiveIssued"' in r.value)
        altered = issued.value.replace(DIRECTIVE.encode(), b"FORGE-2", 1)
        assert sum(a != b for a, b in zip(altered, issued.value, strict=True)) == 1
        await produce(settings, DIRECTIVES.name, issued.key, altered, list(issued.headers))
        async with TopicReader(settings, dead_letter_topic("impact")) as letters:
            letter = await letters.wait_for(
                lambda m: isinstance(m, DeadLetter) and "bad signature" in m.reason, TIMEOUT, "altered directive"
            )
        assert letter.topic == DIRECTIVES.name
        # Intake's own view leaves it out of its book too (it would otherwise list FORGE-2 and number after it).
        async with TopicReader(settings, dead_letter_topic("intake")) as letters:
            letter = await letters.wait_for(
                lambda m: isinstance(m, DeadLetter) and "bad signature" in m.reason, TIMEOUT, "intake's view"
            )
        assert letter.topic == DIRECTIVES.name

        # Drift: a validly signed wrong restriction (enforcement's own key) makes the cluster deny everyone;
        # the next heartbeat shows it, enforcement marks it drifted and re-sends the right set.
        wrong = restrict_all(cluster, "signed-but-wrong")
        value = wrong.model_dump_json().encode()
        headers = stack.record_signer("enforcement").headers(COMMANDS.name, cluster.encode(), value)
        sent, since = time.monotonic(), utc_now()
        await produce(settings, COMMANDS.name, cluster.encode(), value, [(k, v.encode()) for k, v in headers.items()])

        def states(messages: list) -> list[EnforcementProgressed]:
            return [
                m
                for m in messages
                if isinstance(m, EnforcementProgressed) and m.directive_id == DIRECTIVE and m.occurred_at >= since
            ]

        def corrected(messages: list) -> bool:
            seen = [m.clusters[cluster].state for m in states(messages)]
            return "drifted" in seen and "applied" in seen[seen.index("drifted") :]

        async with TopicReader(settings, ENFORCEMENT) as status:
            messages = await status.drain(corrected, TIMEOUT, "drift on record, then the right state re-applied")
        drifted = next(m for m in states(messages) if m.clusters[cluster].state == "drifted")
        took = time.monotonic() - sent
        assert drifted.clusters[cluster].reason.startswith("drift: holds")
        assert await asyncio.to_thread(denied, stack, cluster) == before
        assert took <= 3 * HEARTBEAT_S + 10, f"drift corrected after {took:.1f} s"
        print(f"drift corrected {took:.1f} s after the wrong command (heartbeats every {HEARTBEAT_S:g} s)")

        # A replayed old restriction (intact signature) after the lift: refused, access stays restored.
        old = await first_record(
            settings, COMMANDS, lambda r: r.key == cluster.encode() and b'"RestrictCommand"' in r.value
        )
        old_id = RestrictCommand.model_validate_json(old.value).event_id
        await asyncio.to_thread(stack.lift, DIRECTIVE, "done")
        await enforced(settings, "lift")
        restored = await asyncio.to_thread(denied, stack, cluster)
        assert restored == set()
        await produce(settings, COMMANDS.name, old.key, old.value, list(old.headers))
        reported = await refusal(settings, old_id)
        assert reported.reason.startswith("refused: replayed")
        assert await asyncio.to_thread(denied, stack, cluster) == restored

        # The same record again (same command id, intact signature): refused, nothing changes.
        await asyncio.to_thread(stack.issue, directive_body(REPLAYED))
        async with TopicReader(settings, COMMANDS) as commands:
            sent = await commands.wait_for(
                lambda m: isinstance(m, RestrictCommand) and m.directive_id == REPLAYED and m.cluster_id == cluster,
                TIMEOUT,
                f"{REPLAYED} sent to {cluster}",
            )
        record = await first_record(settings, COMMANDS, lambda r: sent.event_id.encode() in r.value)
        async with TopicReader(settings, ENFORCEMENT) as status:
            await status.wait_for(
                lambda m: isinstance(m, DirectiveEnforced) and m.directive_id == REPLAYED, TIMEOUT, f"{REPLAYED} on"
            )
        holding = await asyncio.to_thread(denied, stack, cluster)
        await produce(settings, COMMANDS.name, record.key, record.value, list(record.headers))
        again = await refusal(settings, sent.event_id)
        assert again.reason == f"refused: replayed: command {sent.event_id!r} was received already"
        assert await asyncio.to_thread(denied, stack, cluster) == holding

        # The audit flags each forgery (never the replay: its signature is intact) and lists the drift healed.
        folder = tmp_path_factory.mktemp("forgery-report")
        await audit_flags_the_forgeries(stack, folder, cluster, since.isoformat(), before)

        await forged_acks_never_count(stack, settings, cluster)
        await audit_flags_the_forged_acks(stack, folder, cluster)
    finally:
        await asyncio.to_thread(stack.stop)


async def forged_acks_never_count(stack: Stack, settings: KafkaSettings, cluster: str) -> None:
    """With the cluster's agent stopped, a directive's commands to it wait unapplied. An "applied" ack and a
    heartbeat claiming the expected digest, unsigned or signed by another cluster's agent, are dead-lettered by
    enforcement and the cluster is not applied; an ack signed with the cluster's own key is what makes it so."""
    await asyncio.to_thread(stack.stop_one, f"agent-{cluster}")
    await asyncio.to_thread(stack.issue, directive_body(ACKED))
    async with TopicReader(settings, COMMANDS) as commands:
        sent = await commands.wait_for(
            lambda m: isinstance(m, RestrictCommand) and m.directive_id == ACKED and m.cluster_id == cluster,
            TIMEOUT,
            f"{ACKED} sent to {cluster}",
        )
    ack = CommandApplied(
        producer="agent",
        cluster_id=cluster,
        directive_id=ACKED,
        revision=sent.revision,
        action="restrict",
        digest=sent.expected_digest,
    )
    beat = AgentHeartbeat(
        producer="agent",
        cluster_id=cluster,
        models=["fable-5"],
        held={ACKED: HeldDirective(revision=sent.revision, digest=sent.expected_digest)},
        ready=True,
    )
    other = stack.record_signer(f"agent-{next(c.cluster_id for c in stack.clusters if c.cluster_id != cluster)}")
    forged = [(ack, None), (ack, other), (beat, None), (beat, other)]
    for message, signer in forged:
        value, key = encoded(message), key_of(ACKS, message)
        headers = signed_headers(signer, ACKS, key, value)
        await produce(settings, ACKS.name, key, value, [(k, v.encode()) for k, v in headers.items()])
    forged_ids = {ack.event_id, beat.event_id}

    def buried(letters: list) -> bool:
        ours = [m for m in letters if isinstance(m, DeadLetter) and m.topic == ACKS.name]
        return sum(any(i in _decoded(m.value_b64 or "") for i in forged_ids) for m in ours) >= len(forged)

    async with TopicReader(settings, dead_letter_topic("enforcement")) as letters:
        seen = await letters.drain(buried, TIMEOUT, "the forged acks and heartbeats dead-lettered")
    reasons = {m.reason for m in seen if isinstance(m, DeadLetter) and m.topic == ACKS.name}
    assert "SignatureRefused: unsigned" in reasons
    assert any("signed by the key of" in r and f"not by the key of {cluster!r}" in r for r in reasons)

    genuine = ack.model_copy(update={"event_id": f"genuine-{ack.event_id}"})
    value, key = encoded(genuine), key_of(ACKS, genuine)
    headers = signed_headers(stack.record_signer(f"agent-{cluster}"), ACKS, key, value)
    await produce(settings, ACKS.name, key, value, [(k, v.encode()) for k, v in headers.items()])
    async with TopicReader(settings, ENFORCEMENT) as status:
        first_applied = await status.wait_for(
            lambda m: (
                isinstance(m, EnforcementProgressed)
                and m.directive_id == ACKED
                and cluster in m.clusters
                and m.clusters[cluster].state == "applied"
            ),
            TIMEOUT,
            f"{cluster} applied",
        )
    assert first_applied.causation_id == genuine.event_id  # no forged record made it applied before


async def audit_flags_the_forged_acks(stack: Stack, folder: Path, cluster: str) -> None:
    """The forged ack and heartbeat records (unsigned, or signed by another cluster's agent) are forgeries in the
    report of their directive and in verify's list; the genuine ack, signed by the cluster's own agent, is not."""
    report_json = folder / "acked.json"
    done = await asyncio.to_thread(countermand, stack, "report", ACKED, "--json", str(report_json))
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(report_json.read_text())
    assert ACKS.name in report["signed_topics"]
    forged = sorted((f["event"], f["topic"], f["reason"].split(" (key id")[0]) for f in report["forgeries"])
    other = next(c.cluster_id for c in stack.clusters if c.cluster_id != cluster)
    assert forged == [
        ("CommandApplied", ACKS.name, f"signed by the key of {other!r}, not by the key of {cluster!r}"),
        ("CommandApplied", ACKS.name, "unsigned"),
    ], report["forgeries"]
    flagged = [d for d in report["discrepancies"] if d["kind"] == "forged_record"]
    assert len(flagged) == 2 and {d["cluster"] for d in flagged} == {cluster}
    applied = [c for c in report["clusters"] if c["cluster"] == cluster]
    assert applied and applied[-1]["state"] == "applied"  # by the genuine ack alone

    def verified() -> list[str] | None:
        done = countermand(stack, "verify", "--ledger", str(stack.ledger), "--no-kafka")
        lines = [line for line in done.stderr.splitlines() if line.startswith("  seq ") and ACKS.name in line]
        return lines if len(lines) >= 4 else None

    lines = await eventually(lambda: asyncio.to_thread(verified), what="verify listing the forged acks")
    kinds = sorted((line.split()[3].rstrip(":"), line.rsplit(": ", 1)[1].split(" (key id")[0]) for line in lines)
    refused = f"signed by the key of {other!r}, not by the key of {cluster!r}"
    assert kinds == [
        ("AgentHeartbeat", refused),
        ("AgentHeartbeat", "unsigned"),
        ("CommandApplied", refused),
        ("CommandApplied", "unsigned"),
    ], lines


def _decoded(value_b64: str) -> str:
    return base64.b64decode(value_b64).decode(errors="replace")
