"""The agent signs every ack and heartbeat with its cluster's key, over the bytes it produces."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from services.agent.app import build
from services.agent.settings import AgentSettings
from shared.contracts.catalogue import ACKS
from shared.contracts.serving import AgentHeartbeat, CommandApplied
from shared.runtime.record_signing import SigningSettings, verify_record
from shared.runtime.signing import KeySet, SignatureRefused, Signer
from tests.unit.agent.builders import CLUSTER, restrict


@dataclass
class Record:
    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]


class Produced:
    """Stands in for the acks publisher: keeps each record as a consumer would receive it."""

    def __init__(self) -> None:
        self.records: list[Record] = []

    async def publish(self, body: Any, *, key: bytes, headers: dict | None = None, **_: Any) -> None:
        assert isinstance(body, bytes), "a signed record goes as the bytes that were signed"
        self.records.append(Record(ACKS.name, key, body, tuple((k, v.encode()) for k, v in (headers or {}).items())))


@pytest.fixture
def signed_agent(tmp_path: Path):
    agent_key, enforcement_key = Signer.generate(f"agent-{CLUSTER}"), Signer.generate("enforcement-k")
    (tmp_path / "agent.pem").write_bytes(agent_key.pem())
    (tmp_path / "enforcement.json").write_text(KeySet([enforcement_key.public()]).to_json())
    signing = SigningSettings(
        mode="on",
        key_file=tmp_path / "agent.pem",
        key_id=f"agent-{CLUSTER}",
        trusted_keys_file=tmp_path / "enforcement.json",
    )
    agent = build(AgentSettings(cluster_id=CLUSTER, state_dir=tmp_path, signing=signing))
    agent.reports.publisher = Produced()
    yield agent, KeySet([agent_key.public(subject=CLUSTER)])
    agent.holding.store.close()


async def test_acks_and_heartbeats_verify_as_signed_by_the_clusters_key(signed_agent) -> None:
    agent, keys = signed_agent
    await agent.handle(restrict("D1", 1, "fable-5", [1]), partition=0, offset=0)
    await agent.heartbeat()
    ack, beat = agent.reports.publisher.records
    assert verify_record(keys, ack, subject=CLUSTER) == verify_record(keys, beat, subject=CLUSTER) == f"agent-{CLUSTER}"
    assert CommandApplied.model_validate_json(ack.value).directive_id == "D1"
    assert AgentHeartbeat.model_validate_json(beat.value).held["D1"].revision == 1


async def test_an_ack_altered_after_signing_is_refused(signed_agent) -> None:
    agent, keys = signed_agent
    await agent.handle(restrict("D1", 1, "fable-5", [1]), partition=0, offset=0)
    (ack,) = agent.reports.publisher.records
    ack.value = ack.value.replace(b'"revision":1', b'"revision":2')
    with pytest.raises(SignatureRefused, match="bad signature"):
        verify_record(keys, ack, subject=CLUSTER)


def test_an_agent_with_signing_on_and_no_key_refuses_to_start(tmp_path: Path) -> None:
    (tmp_path / "keys.json").write_text(KeySet([]).to_json())
    signing = SigningSettings(mode="on", trusted_keys_file=tmp_path / "keys.json")
    with pytest.raises(ValueError, match="COUNTERMAND_SIGNING_KEY_FILE"):
        build(AgentSettings(cluster_id=CLUSTER, state_dir=tmp_path, signing=signing))
