"""Bad commands are refused with a reason naming the problem, and leave what the agent holds unchanged."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from services.agent.command_effects import Failed, on_command, on_delta, on_restrict
from services.agent.restrictions import Restrictions
from tests.unit.agent.builders import CLUSTER, delta, recording_agent, restrict

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
NOT_ROARING = "bm90IGEgYml0bWFw"  # valid base64 of b"not a bitmap"


def _held() -> Restrictions:
    state = Restrictions()
    on_restrict(state, restrict("D1", 1, "fable-5", [1, 2]), NOW)
    on_restrict(state, restrict("D2", 3, "mythos-5", [7], chunk=0, chunks=2), NOW)  # staged, incomplete
    return state


def _fingerprint(state: Restrictions) -> tuple:
    """Everything observable about what the agent holds: digests, staging, early deltas, lift tombstones."""
    return (
        state.describe(),
        {d: s.digest for d, s in state.held.items()},
        sorted((key, sorted(staged.parts)) for key, staged in state.staging.items()),
        sorted((key, sorted(deltas)) for key, deltas in state.pending.items()),
    )


def _refused(outcome) -> str:
    [ack] = outcome.acks
    assert isinstance(ack, Failed)
    return ack.reason


def test_a_delta_for_an_unknown_revision_is_refused_and_changes_nothing() -> None:
    state = _held()
    before = _fingerprint(state)
    reason = _refused(on_delta(state, delta("D1", 5, 1, "fable-5", added=[9])))
    assert "revision 5" in reason and "does not hold" in reason
    assert _fingerprint(state) == before


def test_corrupt_bitmap_bytes_are_refused_and_change_nothing_held() -> None:
    state = _held()
    digest = state.digest("D1")
    assert "roaring" in _refused(on_delta(state, delta("D1", 1, 1, "fable-5", added=NOT_ROARING)))
    assert "chunk 0" in _refused(on_restrict(state, restrict("D1", 2, "fable-5", NOT_ROARING), NOW))
    assert state.digest("D1") == digest and state.held["D1"].revision == 1
    assert ("D1", 2) not in state.staging and state.pending == {}


def test_a_command_for_another_cluster_is_refused_through_the_pure_core_naming_the_cluster() -> None:
    state = _held()
    before = _fingerprint(state)
    elsewhere = restrict("D9", 1, "fable-5", [1]).model_copy(update={"cluster_id": "eu-west"})
    reason = _refused(on_command(state, elsewhere, CLUSTER, NOW))
    assert reason.startswith("cluster_id:") and "eu-west" in reason and CLUSTER in reason
    assert _fingerprint(state) == before


async def test_a_command_for_another_cluster_on_the_topic_is_ignored_silently(tmp_path: Path) -> None:
    agent = recording_agent(tmp_path)
    await agent.handle(restrict("D1", 1, "fable-5", [1]), 0, 0)
    before = _fingerprint(agent.holding.state)
    await agent.handle(restrict("D1", 2, "fable-5", [5]).model_copy(update={"cluster_id": "eu-west"}), 0, 1)
    assert (
        len(agent.reports.publisher.sent) == 1
        and _fingerprint(agent.holding.state) == before
        and agent.holding.offsets == {0: 1}
    )
