"""An agent reads only the commands partition its cluster's commands are written to."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiokafka.partitioner import DefaultPartitioner

from services.agent import app as agent_app
from services.agent.app import build
from services.agent.settings import AgentSettings
from shared.contracts.catalogue import COMMANDS
from shared.runtime.topics import partition_for


@pytest.mark.parametrize("cluster", ["us-east", "eu-west", "ap-south", "bench-us-east", "c" * 60, "ünï"])
def test_the_partition_is_the_one_producers_write_the_cluster_key_to(cluster: str) -> None:
    key = cluster.encode()
    partitions = list(range(COMMANDS.partitions))
    assert partition_for(COMMANDS, key) == DefaultPartitioner()(key, partitions, partitions)


def test_the_agent_subscribes_to_its_cluster_partition_only(tmp_path: Path) -> None:
    agent = build(AgentSettings(cluster_id="eu-west", state_dir=tmp_path))
    assigned = [(p.topic, p.partition) for p in agent.subscriber.partitions]
    assert assigned == [(COMMANDS.name, partition_for(COMMANDS, b"eu-west"))]


async def test_a_commands_topic_with_another_partition_count_stops_the_agent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def offsets(bootstrap: str, topic: str) -> tuple[dict[int, int], dict[int, int]]:
        return {p: 0 for p in range(COMMANDS.partitions + 2)}, {p: 5 for p in range(COMMANDS.partitions + 2)}

    monkeypatch.setattr(agent_app, "offsets_at_start", offsets)
    agent = build(AgentSettings(cluster_id="eu-west", state_dir=tmp_path))
    with pytest.raises(RuntimeError, match=rf"has {COMMANDS.partitions + 2} partitions, the catalogue says"):
        await agent.consume()
    assert not agent.subscriber.running
