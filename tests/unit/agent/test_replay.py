"""A restrict command whose id the agent received already is refused as a replay, and nothing changes."""

from __future__ import annotations

from pathlib import Path

from pyroaring import BitMap

from services.agent.command_effects import Failed, on_delta, on_lift, on_restrict
from services.agent.restriction_store import RestrictionStore
from services.agent.restrictions import Restrictions
from shared.contracts.bitmaps import scope_digest, set_digest
from tests.unit.agent.builders import CLUSTER, delta, lift, recording_agent, restrict


def _digest(users: list[int]) -> str:
    return scope_digest({"fable-5": set_digest(BitMap(users))})


def test_the_same_restrict_command_id_sent_again_is_refused() -> None:
    state = Restrictions()
    command = restrict("D1", 1, "fable-5", [1])
    on_restrict(state, command)
    (refusal,) = on_restrict(state, command).acks
    assert isinstance(refusal, Failed)
    assert refusal.reason == f"refused: replayed: command {command.event_id!r} was received already"
    assert state.held["D1"].sets == {"fable-5": BitMap([1])}


def test_a_replayed_earlier_send_cannot_undo_the_deltas_applied_since() -> None:
    state = Restrictions()
    first = restrict("D1", 1, "fable-5", [1])
    on_restrict(state, first)
    on_delta(state, delta("D1", 1, 1, "fable-5", added=[2]))
    held = state.held["D1"]
    (refusal,) = on_restrict(state, first).acks  # its expected digest differs from what is held now
    assert isinstance(refusal, Failed) and refusal.reason.startswith("refused: replayed: command")
    assert state.held["D1"] == held and state.staging == {}


def test_a_replayed_chunk_of_a_revision_still_staging_is_refused_and_not_staged_twice() -> None:
    state = Restrictions()
    chunk = restrict("D1", 1, "fable-5", [1], 0, 2, expected=_digest([1, 2]))
    on_restrict(state, chunk)
    (refusal,) = on_restrict(state, chunk).acks
    assert isinstance(refusal, Failed) and refusal.reason.startswith("refused: replayed: command")
    assert state.staging[("D1", 1)].parts == {0: ("fable-5", BitMap([1]))}


def test_a_fresh_send_of_the_held_revision_is_still_confirmed() -> None:
    state = Restrictions()
    first = on_restrict(state, restrict("D1", 1, "fable-5", [1]))
    again = on_restrict(state, restrict("D1", 1, "fable-5", [1]))  # a new command id: a re-send
    assert again.acks == first.acks and again.received is not None


def test_ids_of_superseded_and_lifted_revisions_are_forgotten() -> None:
    state = Restrictions()
    on_restrict(state, restrict("D1", 1, "fable-5", [1]))
    on_restrict(state, restrict("D1", 2, "fable-5", [2]))
    assert set(state.received) == {("D1", 2)}
    on_lift(state, lift("D1", 2))
    assert state.received == {}


def test_received_ids_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "agent.sqlite3"
    store = RestrictionStore(path)
    state = Restrictions()
    command = restrict("D1", 1, "fable-5", [1])
    store.record(state, "D1", on_restrict(state, command))
    store.close()
    loaded, _ = RestrictionStore(path).load()
    (refusal,) = on_restrict(loaded, command).acks
    assert isinstance(refusal, Failed) and refusal.reason.startswith("refused: replayed: command")


def test_the_id_of_a_confirmed_resend_is_durable_too(tmp_path: Path) -> None:
    path = tmp_path / "agent.sqlite3"
    store = RestrictionStore(path)
    state = Restrictions()
    store.record(state, "D1", on_restrict(state, restrict("D1", 1, "fable-5", [1])))
    resend = restrict("D1", 1, "fable-5", [1])
    store.record(state, "D1", on_restrict(state, resend))  # changes nothing held, but its id is recorded
    store.close()
    loaded, _ = RestrictionStore(path).load()
    assert resend.event_id in loaded.received[("D1", 1)]


async def test_a_replay_is_reported_on_the_acks_topic_and_changes_nothing(tmp_path: Path) -> None:
    agent = recording_agent(tmp_path)
    command = restrict("D1", 1, "fable-5", [1])
    await agent.handle(command, partition=0, offset=0)
    await agent.handle(lift("D1", 1), partition=0, offset=1)
    await agent.handle(restrict("D1", 2, "fable-5", [5]), partition=0, offset=2)
    second = restrict("D1", 2, "fable-5", [5])  # a re-send of the held revision under a fresh id: confirmed
    await agent.handle(second, partition=0, offset=3)
    assert agent.reports.publisher.sent[-1][0].type == "CommandApplied"
    before = agent.holding.store.load()[0].held
    await agent.handle(second, partition=0, offset=4)  # the same record produced again
    refusal = agent.reports.publisher.sent[-1][0]
    assert refusal.type == "CommandFailed" and refusal.cluster_id == CLUSTER
    assert refusal.reason.startswith("refused: replayed: command") and refusal.causation_id == second.event_id
    assert agent.holding.store.load()[0].held == before == agent.holding.state.held
