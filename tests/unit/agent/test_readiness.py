"""When an agent answers checks: caught up with its commands and synced with the control plane."""

from __future__ import annotations

from pathlib import Path

from services.agent.app import Agent
from services.agent.readiness import Readiness
from tests.unit.agent.builders import CLUSTER, closed, recording_agent, restrict, synced


async def caught_up(agent: Agent) -> None:
    """What the catch-up watcher does once the group reached the end offsets noted at start."""
    agent.readiness.caught_up = True
    await agent.become_ready()


def heartbeats(agent: Agent) -> list[bool]:
    return [message.ready for message, _ in agent.reports.publisher.sent if message.type == "AgentHeartbeat"]


def test_ready_needs_both_catch_up_and_sync() -> None:
    assert not Readiness(CLUSTER).ready
    assert not Readiness(CLUSTER, caught_up=True).ready
    assert not Readiness(CLUSTER, synced=True).ready
    assert Readiness(CLUSTER, synced=True, caught_up=True).ready


def test_only_a_marker_for_its_own_cluster_syncs_and_only_once() -> None:
    readiness = Readiness(CLUSTER)
    assert not readiness.syncs("elsewhere")
    assert readiness.syncs(CLUSTER)
    assert not Readiness(CLUSTER, synced=True).syncs(CLUSTER)


async def test_a_new_agent_caught_up_is_not_ready_until_its_sync_marker(tmp_path: Path) -> None:
    agent = recording_agent(tmp_path)
    try:
        await agent.handle(restrict("D1", 1, "fable-5", [1]), partition=0, offset=0)
        await caught_up(agent)
        assert not agent.checker.ready and heartbeats(agent) == []
        await agent.handle(synced(), partition=0, offset=1)
        assert agent.checker.ready and agent.readiness.synced and heartbeats(agent) == [True]
        assert agent.holding.offsets == {0: 2}
        assert agent.checker.check(1, "fable-5", agent.clock()).decision == "deny"
    finally:
        await closed(agent)


async def test_a_marker_consumed_before_catching_up_makes_the_agent_ready_once_caught_up(tmp_path: Path) -> None:
    agent = recording_agent(tmp_path)
    try:
        await agent.handle(synced(), partition=2, offset=7)
        assert agent.readiness.synced and not agent.checker.ready
        await caught_up(agent)
        assert agent.checker.ready
    finally:
        await closed(agent)


async def test_a_marker_for_another_cluster_is_ignored(tmp_path: Path) -> None:
    agent = recording_agent(tmp_path)
    try:
        await caught_up(agent)
        await agent.handle(synced("elsewhere"), partition=0, offset=0)
        assert not agent.checker.ready and not agent.readiness.synced and not agent.holding.store.synced()
        assert agent.reports.publisher.sent == []
    finally:
        await closed(agent)


async def test_a_restarted_agent_synced_before_is_ready_on_catch_up_alone(tmp_path: Path) -> None:
    first = recording_agent(tmp_path)
    await first.handle(synced(), partition=0, offset=0)
    await closed(first)

    restarted = recording_agent(tmp_path)
    try:
        assert restarted.readiness.synced and not restarted.checker.ready
        await caught_up(restarted)
        assert restarted.checker.ready
    finally:
        await closed(restarted)


async def test_an_agent_never_synced_stays_unsynced_after_a_restart(tmp_path: Path) -> None:
    first = recording_agent(tmp_path)
    await first.handle(restrict("D1", 1, "fable-5", [1]), partition=0, offset=0)
    await closed(first)

    restarted = recording_agent(tmp_path)
    try:
        await caught_up(restarted)
        assert not restarted.readiness.synced and not restarted.checker.ready
    finally:
        await closed(restarted)


async def test_heartbeats_carry_the_last_applied_offsets(tmp_path: Path) -> None:
    agent = recording_agent(tmp_path)
    try:
        await agent.handle(restrict("D1", 1, "fable-5", [7]), partition=4, offset=1206)
        await agent.heartbeat()
        [beat] = [message for message, _ in agent.reports.publisher.sent if message.type == "AgentHeartbeat"]
        assert beat.offsets == {4: 1207} and beat.held["D1"].revision == 1
    finally:
        await closed(agent)
