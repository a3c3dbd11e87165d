"""The agent's wiring, one test body on both transports (FastStream's pattern): in memory (TestKafkaBroker,
no broker, runs under -m 'not kafka') and on the session's real broker (with_real). Signing is on."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from faststream.kafka import TestKafkaBroker
from faststream.kafka import testing as kafka_testing
from pyroaring import BitMap

from services.agent.app import Agent, build
from services.agent.settings import AgentSettings
from shared.contracts.bitmaps import scope_digest, set_digest
from shared.contracts.catalogue import COMMANDS
from shared.contracts.directives import CausedBy
from shared.runtime.record_signing import SigningSettings, encoded, signed_headers
from shared.runtime.settings import KafkaSettings
from shared.runtime.signing import KeySet, Signer
from tests.integration.agent.conftest import MODELS, lift_command, restrict_chunks

_runs = itertools.count(1)
TRANSPORTS = ["memory", pytest.param("kafka", marks=pytest.mark.kafka)]
TIMEOUT_S = 60.0


@dataclass
class Wired:
    agent: Agent
    broker: Any
    enforcement: Signer  # the key the agent trusts

    async def send(self, command: Any, signer: Signer | None = None, *, unsigned: bool = False) -> None:
        """Produce a command as enforcement does: the exact bytes signed, keyed by cluster (or not signed)."""
        body, key = encoded(command), command.cluster_id.encode()
        headers = signed_headers(None if unsigned else signer or self.enforcement, COMMANDS, key, body)
        await self.broker.publish(body, topic=COMMANDS.name, key=key, partition=self.agent.partition, headers=headers)

    async def ack_of(self, command: Any, nth: int = 1) -> dict:
        """The agent's `nth` ack caused by `command` (on the real broker, once it came)."""
        deadline = asyncio.get_running_loop().time() + TIMEOUT_S
        while True:
            calls = self.agent.reports.publisher.mock.call_args_list
            acks = [c.args[0] for c in calls if c.args[0].get("causation_id") == command.event_id]
            if len(acks) >= nth:
                return acks[nth - 1]
            assert asyncio.get_running_loop().time() < deadline, f"no ack of {command.event_id}"
            await asyncio.sleep(0.05)


@pytest.fixture(params=TRANSPORTS)
def kafka_settings(request: pytest.FixtureRequest) -> KafkaSettings | None:
    """None in memory; the session broker's settings on the real one (its fixture only started then)."""
    return KafkaSettings(bootstrap=request.getfixturevalue("bootstrap")) if request.param == "kafka" else None


@pytest.fixture
def offsets(monkeypatch: pytest.MonkeyPatch) -> None:
    """In memory every record would have offset 0; the agent skips offsets its snapshot reflects, so number them
    as a partition does."""
    numbering, build_message = itertools.count(), kafka_testing.build_message

    async def numbered(*args: Any, **kwargs: Any) -> Any:
        record = await build_message(*args, **kwargs)
        record.offset = next(numbering)
        return record

    monkeypatch.setattr(kafka_testing, "build_message", numbered)


@pytest.fixture
async def wired(kafka_settings: KafkaSettings | None, tmp_path: Path, offsets: None) -> AsyncIterator[Wired]:
    """An agent with signing on, built from settings, its broker under TestKafkaBroker (memory or real)."""
    cluster = f"twin-{next(_runs)}-{uuid.uuid4().hex[:8]}"
    own, enforcement = Signer.generate(f"agent-{cluster}"), Signer.generate("enforcement-twin")
    (tmp_path / "agent.pem").write_bytes(own.pem())
    (tmp_path / "enforcement.json").write_text(KeySet([enforcement.public()]).to_json())
    signing = SigningSettings(
        mode="on", key_file=tmp_path / "agent.pem", key_id=own.key_id, trusted_keys_file=tmp_path / "enforcement.json"
    )
    settings = AgentSettings(
        cluster_id=cluster, models=MODELS, state_dir=tmp_path, kafka=kafka_settings or KafkaSettings(), signing=signing
    )
    agent = build(settings)
    try:
        async with TestKafkaBroker(agent.broker, with_real=kafka_settings is not None) as broker:
            yield Wired(agent, broker, enforcement)
    finally:
        agent.holding.store.close()


async def test_a_signed_restriction_is_applied_and_acked_with_its_digest_then_lifted(wired: Wired) -> None:
    cluster = wired.agent.settings.cluster_id
    first, second = restrict_chunks(cluster, "TWIN-1", 1, [("fable-5", [1, 2]), ("mythos-5", [3])])
    await wired.send(first)
    await wired.send(second)
    applied = await wired.ack_of(second)
    expected = scope_digest({"fable-5": set_digest(BitMap([1, 2])), "mythos-5": set_digest(BitMap([3]))})
    assert applied["type"] == "CommandApplied" and applied["action"] == "restrict"
    assert applied["digest"] == expected == wired.agent.holding.state.digest("TWIN-1")
    assert wired.agent.holding.store.load()[0].held["TWIN-1"].sets["fable-5"] == BitMap([1, 2])

    lift = lift_command(cluster, "TWIN-1", 1)
    await wired.send(lift)
    lifted = await wired.ack_of(lift)
    assert lifted["type"] == "CommandApplied" and lifted["action"] == "lift"
    assert wired.agent.holding.state.held == {} and wired.agent.holding.store.load()[0].held == {}


async def test_a_command_signed_by_another_key_is_refused_and_changes_nothing(wired: Wired) -> None:
    cluster = wired.agent.settings.cluster_id
    (forged,) = restrict_chunks(cluster, "TWIN-2", 1, [("fable-5", [1])])
    await wired.send(forged, Signer.generate("enforcement-twin"))
    refusal = await wired.ack_of(forged)
    assert refusal["type"] == "CommandFailed" and refusal["reason"].startswith("refused: bad signature")
    assert wired.agent.holding.state.held == {}


async def test_forged_lifts_and_restrictions_and_a_replayed_old_one_are_refused_and_change_nothing(
    wired: Wired,
) -> None:
    cluster = wired.agent.settings.cluster_id
    cause = CausedBy(proposal_id="p-0123456789ab", proposed_by="alice@example.com", approved_by=["bob@example.com"])
    (old,) = restrict_chunks(cluster, "TWIN-3", 1, [("fable-5", [1, 2])])
    (current,) = restrict_chunks(cluster, "TWIN-3", 2, [("fable-5", [1, 2, 3])])
    old, current = (c.model_copy(update={"caused_by": cause}) for c in (old, current))
    for genuine in (old, current):  # what enforcement sent, naming who caused it: applied
        await wired.send(genuine)
        assert (await wired.ack_of(genuine))["type"] == "CommandApplied"
    held, stored = wired.agent.holding.state.digest("TWIN-3"), wired.agent.holding.store.load()[0].held["TWIN-3"]

    lift = lift_command(cluster, "TWIN-3", 2).model_copy(update={"caused_by": cause})
    (everyone,) = restrict_chunks(cluster, "TWIN-3", 3, [("fable-5", list(range(1, 1000)))])
    forgeries = [
        (lift, {"unsigned": True}, "refused: unsigned"),
        (
            lift.model_copy(update={"event_id": "forged-lift-2"}),
            {"signer": Signer.generate("enforcement-twin")},
            "refused: bad signature (key id 'enforcement-twin')",
        ),
        (everyone, {"unsigned": True}, "refused: unsigned"),
        (
            everyone.model_copy(update={"event_id": "forged-all-2"}),
            {"signer": Signer.generate("stranger")},
            "refused: unknown signing key (key id 'stranger')",
        ),
    ]
    for command, how, reason in forgeries:
        await wired.send(command, **how)
        refused = await wired.ack_of(command)
        assert (refused["type"], refused["reason"]) == ("CommandFailed", reason)
    # The old restriction replayed as it was sent (same bytes, signature intact): refused as older than what is held.
    await wired.send(old)
    refused = await wired.ack_of(old, nth=2)
    assert refused["type"] == "CommandFailed" and refused["reason"].startswith("refused: replayed: revision 1 is older")
    # Nothing changed: the same revision and digest held, in memory and on disk.
    assert wired.agent.holding.state.held["TWIN-3"].revision == 2
    assert wired.agent.holding.state.digest("TWIN-3") == held
    assert wired.agent.holding.store.load()[0].held["TWIN-3"] == stored
