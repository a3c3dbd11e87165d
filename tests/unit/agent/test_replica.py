"""An agent as one of several replicas of its cluster: its own id on acks and heartbeats, its own consumer group
and state, and synced only by a marker answering its own heartbeat."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from services.agent.readiness import Readiness
from services.agent.settings import AgentSettings
from tests.unit.agent.builders import CLUSTER, closed, recording_agent, restrict, synced


def test_each_replica_has_its_own_consumer_group_and_state_file() -> None:
    single = AgentSettings(cluster_id="us-east")
    first, second = (AgentSettings(cluster_id="us-east", replica_id=f"agent-us-east-{i}") for i in (0, 1))
    assert (single.group, single.store_name) == ("countermand-agent-us-east", "us-east.sqlite3")
    assert first.group == "countermand-agent-us-east.agent-us-east-0"
    assert len({single.group, first.group, second.group}) == 3
    assert len({single.store_name, first.store_name, second.store_name}) == 3


def test_the_replica_id_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COUNTERMAND_AGENT_CLUSTER_ID", "us-east")
    monkeypatch.setenv("COUNTERMAND_AGENT_REPLICA_ID", "agent-us-east-1")
    assert AgentSettings().replica_id == "agent-us-east-1"


@pytest.mark.parametrize("replica", ["Agent-0", "-0", "a.b", "a" * 64])
def test_a_malformed_replica_id_is_named(replica: str) -> None:
    with pytest.raises(ValidationError, match="replica_id"):
        AgentSettings(cluster_id="us-east", replica_id=replica)


def test_a_replica_is_synced_only_by_a_marker_answering_its_own_heartbeat() -> None:
    readiness = Readiness(CLUSTER, replica_id="r0")
    readiness.ask("beat-of-r0")
    assert not readiness.syncs(CLUSTER, "beat-of-r1")  # another replica's: sent after what r1 lacked
    assert not readiness.syncs("elsewhere", "beat-of-r0")
    assert readiness.syncs(CLUSTER, "beat-of-r0")


def test_a_single_agent_takes_any_marker_of_its_cluster_as_before() -> None:
    assert Readiness(CLUSTER).syncs(CLUSTER, "beat-of-anyone")


async def test_acks_and_heartbeats_name_the_replica_and_a_not_ready_heartbeat_is_remembered(tmp_path: Path) -> None:
    agent = recording_agent(tmp_path, replica_id="r0")
    try:
        await agent.handle(restrict("D1", 1, "fable-5", [7]), partition=0, offset=0)
        await agent.heartbeat()
        sent = [message for message, _ in agent.reports.publisher.sent]
        [ack] = [m for m in sent if m.type == "CommandApplied"]
        [beat] = [m for m in sent if m.type == "AgentHeartbeat"]
        assert (ack.replica_id, beat.replica_id, beat.ready) == ("r0", "r0", False)
        assert list(agent.readiness.asked) == [beat.event_id]

        await agent.handle(synced(beat="someone-else"), partition=0, offset=1)
        assert not agent.readiness.synced
        await agent.handle(synced(beat=beat.event_id), partition=0, offset=2)
        assert agent.readiness.synced
    finally:
        await closed(agent)
