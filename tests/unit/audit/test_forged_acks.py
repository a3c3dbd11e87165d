"""Acks and heartbeats are checked against the agents' key set, each key naming its cluster (`sub`): one unsigned,
altered, signed by another cluster's agent or by a key naming no cluster is a forgery, listed in the report and
by verify, and never counted as the cluster's acknowledgement."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from pathlib import Path

import orjson
from typer.testing import CliRunner

from services.audit.cli import app as cli_app
from services.audit.evidence import Evidence
from services.audit.forgery import Signatures
from services.audit.ledger import Ledger
from services.audit.record import Record
from services.audit.report import build_report
from shared.contracts.catalogue import ACKS
from shared.runtime.signing import KeySet, Signer
from tests.unit.audit.evidence_story import at, story

NOW = datetime(2026, 3, 4, tzinfo=UTC)
CLUSTERS = ("us-east", "eu-west", "ap-south")
AGENTS = {c: Signer.generate(f"agent-{c}-1") for c in CLUSTERS}
NAMELESS = Signer.generate("agent-nameless-1")  # in the set, but speaks for no cluster
TS = int(at(0).timestamp() * 1000)


def agent_keys() -> KeySet:
    return KeySet([*(AGENTS[c].public(subject=c) for c in CLUSTERS), NAMELESS.public()])


def signatures() -> Signatures:
    return Signatures({ACKS.name: agent_keys()})


def signed(topic: str, key: bytes, value: bytes, signer: Signer | None) -> tuple:
    headers = [] if signer is None else [(k, v.encode()) for k, v in signer.headers(topic, key, value).items()]
    return (topic, key, value, headers)


@functools.cache
def signed_story() -> tuple[tuple, ...]:
    """The story (made once: its event ids are random), every ack and heartbeat signed by its own cluster's agent."""
    out = []
    for topic, key, value in story("EXP-9"):
        signer = AGENTS[orjson.loads(value)["cluster_id"]] if topic == ACKS.name else None
        out.append(signed(topic, key, value, signer))
    return tuple(out)


def honest() -> list[tuple]:
    return list(signed_story())


def ack_of(cluster: str) -> bytes:
    return next(v for t, k, v, _ in honest() if t == ACKS.name and b'"CommandApplied"' in v and k == cluster.encode())


def forged_acks() -> list[tuple]:
    """ap-south's missing ack, forged four ways; and a heartbeat of us-east signed by eu-west's agent."""
    applied = ack_of("us-east").replace(b"us-east", b"ap-south")
    beat = next(v for t, k, v, _ in honest() if t == ACKS.name and b'"AgentHeartbeat"' in v and k == b"us-east")
    altered = signed(ACKS.name, b"ap-south", applied, AGENTS["ap-south"])
    return [
        signed(ACKS.name, b"ap-south", applied, None),
        signed(ACKS.name, b"ap-south", applied, AGENTS["eu-west"]),
        signed(ACKS.name, b"ap-south", applied, NAMELESS),
        (*altered[:2], altered[2].replace(b'"revision":1', b'"revision":2'), altered[3]),
        signed(ACKS.name, b"us-east", beat, AGENTS["eu-west"]),
    ]


def fold(records: list[tuple], checks: Signatures) -> Evidence:
    evidence = Evidence(signatures=checks)
    for offset, (topic, key, value, headers) in enumerate(records):
        evidence.add(topic, 0, offset, key, value, TS, headers)
    return evidence


def test_acks_and_heartbeats_signed_by_their_own_cluster_pass() -> None:
    evidence = fold(honest(), signatures())
    assert evidence.forgeries == []
    assert build_report(evidence, "EXP-9", NOW).signed_topics == [ACKS.name]


def test_an_unsigned_altered_or_another_clusters_ack_is_a_forgery_with_its_reason() -> None:
    evidence = fold(honest() + forged_acks(), signatures())
    assert [f.reason for f in evidence.forgeries] == [
        "unsigned",
        "signed by the key of 'eu-west', not by the key of 'ap-south' (key id 'agent-eu-west-1')",
        "signed by a key that names no cluster, not by the key of 'ap-south' (key id 'agent-nameless-1')",
        "bad signature (key id 'agent-ap-south-1')",
        "signed by the key of 'eu-west', not by the key of 'us-east' (key id 'agent-eu-west-1')",
    ]
    report = build_report(evidence, "EXP-9", NOW)
    assert [(f.event, f.topic) for f in report.forgeries] == [("CommandApplied", ACKS.name)] * 4
    forged = [d for d in report.discrepancies if d.kind == "forged_record"]
    assert len(forged) == 4 and {d.cluster for d in forged} == {"ap-south"}


def test_a_forged_ack_never_counts_as_the_clusters_acknowledgement() -> None:
    genuine = fold(honest(), signatures()).acks
    assert fold(honest() + forged_acks(), signatures()).acks == genuine
    unchecked = fold(honest() + forged_acks(), Signatures({})).acks
    assert len(unchecked[("EXP-9", 1)]) == len(genuine[("EXP-9", 1)]) + 3  # what the checks keep out
    assert ("EXP-9", 2) in unchecked and ("EXP-9", 2) not in genuine  # the altered copy claims revision 2


def test_verify_lists_the_forged_acks(tmp_path: Path) -> None:
    path = tmp_path / "audit" / "ledger.sqlite"
    ledger = Ledger(path)
    records = honest() + forged_acks()
    ledger.append([Record(t, 0, n, k, v, tuple(h), TS) for n, (t, k, v, h) in enumerate(records)])
    ledger.close()
    keys = tmp_path / "agents.jwks.json"
    keys.write_text(agent_keys().to_json())
    done = CliRunner().invoke(
        cli_app, ["verify", "--ledger", str(path), "--no-kafka", "--record-keys", f"{ACKS.name}={keys}"]
    )
    forged = [line for line in done.output.splitlines() if line.startswith("  seq ")]
    assert len(forged) == 5 and all(ACKS.name in line for line in forged), done.output
    assert sum("not by the key of" in line for line in forged) == 3


def test_acks_of_two_replicas_signed_with_their_clusters_key_pass_and_both_count() -> None:
    """Replicas of one cluster's agent share its key: the audit checks acks per cluster, the replica id inside."""
    honest_ack = orjson.loads(ack_of("us-east"))
    replicas = [
        orjson.dumps({**honest_ack, "event_id": f"{honest_ack['event_id']}-{r}", "replica_id": r}) for r in ("r0", "r1")
    ]
    acks = [signed(ACKS.name, b"us-east", value, AGENTS["us-east"]) for value in replicas]
    evidence = fold(honest() + acks, signatures())
    assert evidence.forgeries == []
    assert len(evidence.acks[("EXP-9", 1)]) == len(fold(honest(), signatures()).acks[("EXP-9", 1)]) + 2
    forged = fold(honest() + [signed(ACKS.name, b"us-east", replicas[0], AGENTS["eu-west"])], signatures())
    assert [f.reason for f in forged.forgeries] == [
        "signed by the key of 'eu-west', not by the key of 'us-east' (key id 'agent-eu-west-1')"
    ]
