"""Acks and heartbeats count only when signed by the key of the cluster they speak for: anything else is
dead-lettered with the reason and changes nothing (FastStream's in-memory broker, signing on)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from faststream.kafka import TestKafkaBroker

from services.enforcement.app import EnforcementService, build
from services.enforcement.settings import EnforcementSettings
from shared.contracts.catalogue import ACKS, IMPACT, dead_letter_topic, key_of
from shared.contracts.deadletter import DeadLetter
from shared.contracts.serving import HeldDirective
from shared.runtime.record_signing import SigningSettings, encoded, signed_headers
from shared.runtime.signing import KeySet, Signer
from tests.unit.enforcement.scenario import SETS, applied, assessment, heartbeat

EAST, WEST = "us-east", "eu-west"


@dataclass
class Wired:
    service: EnforcementService
    broker: Any
    signers: dict[str, Signer]
    letters: list[DeadLetter] = field(default_factory=list)

    async def send(self, message: Any, signer: Signer | None, topic=ACKS) -> None:
        body, key = encoded(message), key_of(topic, message)
        await self.broker.publish(body, topic=topic.name, key=key, headers=signed_headers(signer, topic, key, body))

    async def refused(self, message: Any, signer: Signer | None, topic=ACKS) -> str:
        before = len(self.letters)
        await self.send(message, signer, topic)
        for _ in range(100):
            if len(self.letters) > before:
                return self.letters[-1].reason
            await asyncio.sleep(0.01)
        raise AssertionError("no dead letter")


def _write(path: Path, *keys: Any) -> Path:
    path.write_text(KeySet(keys).to_json())
    return path


@pytest.fixture
async def wired(tmp_path: Path) -> AsyncIterator[Wired]:
    signers = {name: Signer.generate(f"{name}-k") for name in ("impact", "impact-old", "enforcement", EAST, WEST)}
    (tmp_path / "enforcement.pem").write_bytes(signers["enforcement"].pem())
    settings = EnforcementSettings(
        state_dir=tmp_path,
        heartbeat_grace_s=0,
        agent_keys_file=_write(tmp_path / "agents.json", *(signers[c].public(subject=c) for c in (EAST, WEST))),
        signing=SigningSettings(
            mode="on",
            key_file=tmp_path / "enforcement.pem",
            key_id="enforcement-k",
            trusted_keys_file=_write(
                tmp_path / "impact.json",
                signers["impact"].public(),
                signers["impact-old"].public(datetime.now(UTC) - timedelta(hours=1)),  # retired
            ),
        ),
    )
    service = build(settings)
    wired = Wired(service, None, signers)

    @service.broker.subscriber(dead_letter_topic("enforcement").name)
    async def letter(message: DeadLetter) -> None:
        wired.letters.append(message)

    try:
        async with TestKafkaBroker(service.broker) as broker:
            wired.broker = broker
            yield wired
    finally:
        service.store.close()


async def test_a_heartbeat_signed_by_its_clusters_key_is_counted(wired: Wired) -> None:
    await wired.send(heartbeat(EAST, "fable-5"), wired.signers[EAST])
    assert EAST in wired.service.core.clusters and wired.letters == []


@pytest.mark.parametrize(
    ("signed_by", "reason"),
    [
        (None, "SignatureRefused: unsigned"),
        (WEST, "SignatureRefused: signed by the key of 'eu-west', not by the key of 'us-east' (key id 'eu-west-k')"),
        ("forger", "SignatureRefused: bad signature (key id 'us-east-k')"),
        ("unknown", "SignatureRefused: unknown signing key (key id 'unknown-k')"),
    ],
)
async def test_a_heartbeat_not_signed_by_its_clusters_key_is_dead_lettered(
    wired: Wired, signed_by: str | None, reason: str
) -> None:
    signer = {
        None: None,
        WEST: wired.signers[WEST],
        "forger": Signer.generate("us-east-k"),  # the right key id, another key
        "unknown": Signer.generate("unknown-k"),
    }[signed_by]
    assert await wired.refused(heartbeat(EAST, "fable-5"), signer) == reason
    assert EAST not in wired.service.core.clusters


async def test_a_forged_applied_ack_or_heartbeat_never_makes_a_cluster_applied(wired: Wired) -> None:
    await wired.send(heartbeat(EAST, *sorted(SETS)), wired.signers[EAST])
    assessed, chunks = assessment()
    for message in [assessed, *chunks]:
        await wired.send(message, wired.signers["impact"], topic=IMPACT)
    track = wired.service.core.rollouts[("D-1", 1, "restrict")].clusters[EAST]
    digest = track.expected_digest
    assert track.attempts == 1 and not track.applied
    forged_beat = heartbeat(EAST, *sorted(SETS), held={"D-1": HeldDirective(revision=1, digest=digest)})
    for message, signer in [
        (applied(EAST, digest), None),
        (applied(EAST, digest), wired.signers[WEST]),
        (applied(EAST, digest), Signer.generate("us-east-k")),
        (forged_beat, None),
        (forged_beat, wired.signers[WEST]),
    ]:
        assert (await wired.refused(message, signer)).startswith("SignatureRefused: ")
    assert not wired.service.core.rollouts[("D-1", 1, "restrict")].clusters[EAST].applied
    await wired.send(applied(EAST, digest), wired.signers[EAST])  # the agent's own ack does count
    assert wired.service.core.rollouts[("D-1", 1, "restrict")].clusters[EAST].applied


@pytest.mark.parametrize(
    ("signed_by", "reason"),
    [
        ("impact-old", "SignatureRefused: retired signing key (key id 'impact-old-k')"),
        ("stranger", "SignatureRefused: unknown signing key (key id 'stranger-k')"),
    ],
)
async def test_an_assessment_signed_by_a_retired_or_unknown_impact_key_is_dead_lettered_and_sends_nothing(
    wired: Wired, signed_by: str, reason: str
) -> None:
    await wired.send(heartbeat(EAST, *sorted(SETS)), wired.signers[EAST])
    signer = wired.signers.get(signed_by) or Signer.generate(f"{signed_by}-k")
    assessed, chunks = assessment()
    for message in [assessed, *chunks]:
        assert await wired.refused(message, signer, topic=IMPACT) == reason
    core = wired.service.core
    assert not core.rollouts and not core.assemblies and not core.sets
    for message in [assessed, *chunks]:  # the same assessment signed by the current key is acted on
        await wired.send(message, wired.signers["impact"], topic=IMPACT)
    assert core.rollouts[("D-1", 1, "restrict")].clusters[EAST].attempts == 1


async def test_replicas_sign_with_their_clusters_key_and_each_replicas_ack_counts(wired: Wired) -> None:
    east = wired.signers[EAST]  # both replicas mount the cluster's one key
    for replica in ("r0", "r1"):
        await wired.send(heartbeat(EAST, *sorted(SETS)).model_copy(update={"replica_id": replica}), east)
    assessed, chunks = assessment()
    for message in [assessed, *chunks]:
        await wired.send(message, wired.signers["impact"], topic=IMPACT)
    track = wired.service.core.rollouts[("D-1", 1, "restrict")].clusters[EAST]
    r1 = applied(EAST, track.expected_digest).model_copy(update={"replica_id": "r1"})
    assert (await wired.refused(r1, wired.signers[WEST])).startswith("SignatureRefused: ")  # another cluster's key
    assert track.replicas == {}
    await wired.send(applied(EAST, track.expected_digest).model_copy(update={"replica_id": "r0"}), east)
    assert not track.applied  # r1 is live and has not acknowledged
    await wired.send(r1, east)
    assert track.applied and set(track.replicas) == {"r0", "r1"}
    assert len([letter for letter in wired.letters if letter.reason.startswith("SignatureRefused")]) == 1
