"""The agent's command handling without Kafka: durable before acknowledged, other clusters and replays skipped."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pyroaring import BitMap

from services.agent.restriction_store import RestrictionStore
from tests.unit.agent.builders import CLUSTER, delta, lift, recording_agent, restrict


async def test_a_restriction_is_durable_before_it_is_acknowledged(tmp_path: Path) -> None:
    agent = recording_agent(tmp_path)
    await agent.handle(restrict("D1", 1, "fable-5", [1]), partition=3, offset=10)
    [(ack, durable)] = agent.reports.publisher.sent
    assert ack.type == "CommandApplied" and ack.producer == "agent" and ack.correlation_id == "D1"
    assert durable == {"D1"}
    assert agent.holding.offsets == {3: 11}


async def test_commands_for_another_cluster_are_ignored(tmp_path: Path) -> None:
    agent = recording_agent(tmp_path)
    await agent.handle(restrict("D1", 1, "fable-5", [1]).model_copy(update={"cluster_id": "elsewhere"}), 0, 0)
    assert agent.reports.publisher.sent == [] and agent.holding.state.held == {}


async def test_a_command_already_in_the_snapshot_is_not_applied_again(tmp_path: Path) -> None:
    agent = recording_agent(tmp_path)
    await agent.handle(restrict("D1", 1, "fable-5", [1]), partition=0, offset=5)
    await agent.handle(lift("D1", 1), partition=0, offset=6)
    await agent.handle(restrict("D1", 1, "fable-5", [1]), partition=0, offset=5)  # replayed
    assert agent.holding.state.held == {}
    assert [ack.action for ack, _ in agent.reports.publisher.sent] == ["restrict", "lift"]


async def test_a_failed_snapshot_write_leaves_memory_as_durable_as_the_snapshot(tmp_path: Path) -> None:
    agent = recording_agent(tmp_path)
    await agent.handle(restrict("D1", 1, "fable-5", [1]), partition=0, offset=0)
    agent.holding.store.close()
    agent.holding.store = RestrictionStore(tmp_path / "agent" / f"{CLUSTER}.sqlite3")

    def broken(*_: Any) -> None:
        raise OSError("disk full")

    agent.holding.store.record = broken
    with pytest.raises(OSError):  # propagates, so the command is retried rather than committed
        await agent.handle(lift("D1", 1), partition=0, offset=1)
    assert set(agent.holding.state.held) == {"D1"} and agent.reports.publisher.sent[-1][0].action == "restrict"
    agent.checker.mark_ready()
    assert agent.checker.check(1, "fable-5", datetime.now(UTC)).decision == "deny"


async def test_a_delta_is_seen_by_checks_before_its_write_and_acknowledged_after_it(tmp_path: Path) -> None:
    agent = recording_agent(tmp_path)
    await agent.handle(restrict("D1", 1, "fable-5", [1]), partition=0, offset=0)
    agent.checker.mark_ready()
    at, seen_while_writing = datetime.now(UTC).timestamp(), []
    write = agent.holding.store.record

    def observed(*args: Any) -> None:
        seen_while_writing.append((agent.checker.denies(7, "fable-5", at), agent.checker.denies(1, "fable-5", at)))
        write(*args)

    agent.holding.store.record = observed
    await agent.handle(delta("D1", 1, 1, "fable-5", added=[7], removed=[1]), partition=0, offset=1)
    assert seen_while_writing == [(True, False)]
    assert [ack.action for ack, _ in agent.reports.publisher.sent] == ["restrict", "delta"]
    assert RestrictionStore(tmp_path / "agent" / f"{CLUSTER}.sqlite3").load()[0].held["D1"].sets["fable-5"] == BitMap(
        [7]
    )


async def test_a_delta_whose_write_fails_is_undone_in_memory_and_in_checks(tmp_path: Path) -> None:
    agent = recording_agent(tmp_path)
    await agent.handle(restrict("D1", 1, "fable-5", [1]), partition=0, offset=0)
    digest = agent.holding.state.digest("D1")

    def broken(*_: Any) -> None:
        raise OSError("disk full")

    agent.holding.store.record = broken
    with pytest.raises(OSError):  # the command is retried rather than committed
        await agent.handle(delta("D1", 1, 1, "fable-5", added=[7], removed=[1]), partition=0, offset=1)
    agent.checker.mark_ready()
    at = datetime.now(UTC).timestamp()
    assert agent.checker.denies(1, "fable-5", at) and not agent.checker.denies(7, "fable-5", at)
    assert agent.holding.state.held["D1"].seq == 0 and agent.holding.state.digest("D1") == digest
