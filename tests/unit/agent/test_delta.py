"""Deltas: applied in seq order per directive revision, early ones buffered, stale ones ignored."""

from __future__ import annotations

from pyroaring import BitMap

from services.agent.command_effects import Applied, Failed, on_delta, on_lift, on_restrict
from services.agent.restrictions import Restrictions
from shared.contracts.bitmaps import sets_digest
from tests.unit.agent.builders import delta, lift, restrict


def _held() -> Restrictions:
    state = Restrictions()
    on_restrict(state, restrict("D1", 1, "fable-5", [1, 2, 3]))
    return state


def _held_two_models() -> Restrictions:
    state = Restrictions()
    on_restrict(state, restrict("D1", 1, "fable-5", [1, 2, 3], 0, 2, expected="x"))
    on_restrict(state, restrict("D1", 1, "mythos-5", [4], 1, 2, expected="x"))
    return state


def test_deltas_in_order_add_and_remove_users() -> None:
    state = _held_two_models()
    first = on_delta(state, delta("D1", 1, 1, "fable-5", added=[7], removed=[1]))
    second = on_delta(state, delta("D1", 1, 2, "mythos-5", added=[9]))
    assert state.held["D1"].sets == {"fable-5": BitMap([2, 3, 7]), "mythos-5": BitMap([4, 9])}
    assert state.held["D1"].seq == 2
    assert first.acks[0].seq == 1
    assert second.acks == (Applied("D1", 1, "delta", sets_digest(state.held["D1"].sets), 2),)


def test_a_delta_for_a_model_not_sent_to_this_cluster_only_advances_the_sequence() -> None:
    state = _held()
    outcome = on_delta(state, delta("D1", 1, 1, "mythos-5", added=[9]))
    assert state.held["D1"].sets == {"fable-5": BitMap([1, 2, 3])}
    assert outcome.acks == (Applied("D1", 1, "delta", sets_digest({"fable-5": BitMap([1, 2, 3])}), 1),)


def test_deltas_out_of_order_wait_for_their_predecessors() -> None:
    state = _held()
    held_now = Applied("D1", 1, "delta", state.digest("D1"), 0)
    assert on_delta(state, delta("D1", 1, 3, "fable-5", removed=[3])).acks == (held_now,)
    assert on_delta(state, delta("D1", 1, 2, "fable-5", added=[8])).acks == (held_now,)
    assert on_delta(state, delta("D1", 1, 2, "fable-5", added=[8])).acks == ()
    assert state.held["D1"].sets == {"fable-5": BitMap([1, 2, 3])}
    outcome = on_delta(state, delta("D1", 1, 1, "fable-5", removed=[1]))
    assert state.held["D1"].sets == {"fable-5": BitMap([2, 8])}
    assert outcome.acks[0].seq == 3
    assert state.pending == {}


def test_a_duplicate_or_older_delta_changes_nothing_and_is_acknowledged_again() -> None:
    state = _held()
    on_delta(state, delta("D1", 1, 1, "fable-5", added=[7]))
    outcome = on_delta(state, delta("D1", 1, 1, "fable-5", removed=[7]))
    assert not outcome.held_changed
    assert state.held["D1"].sets == {"fable-5": BitMap([1, 2, 3, 7])}
    assert outcome.acks[0].seq == 1


def test_a_delta_for_a_revision_not_held_is_refused_with_a_reason_and_changes_nothing() -> None:
    state = _held()
    digest = state.digest("D1")
    newer = on_delta(state, delta("D1", 2, 1, "fable-5", added=[7]))
    unknown = on_delta(state, delta("D2", 1, 1, "fable-5", added=[7]))
    assert [type(a) for a in newer.acks + unknown.acks] == [Failed, Failed]
    assert "revision 2" in newer.acks[0].reason and "holds revision 1" in newer.acks[0].reason
    assert "holds nothing" in unknown.acks[0].reason and unknown.acks[0].revision == 1
    assert not (newer.touched or newer.held_changed or unknown.touched or unknown.held_changed)
    assert state.held["D1"].sets == {"fable-5": BitMap([1, 2, 3])} and "D2" not in state.held
    assert state.digest("D1") == digest and state.pending == {}


def test_a_late_delta_of_a_superseded_or_lifted_revision_is_ignored() -> None:
    state = _held()
    on_restrict(state, restrict("D1", 2, "fable-5", [4]))
    on_restrict(state, restrict("D3", 1, "fable-5", [4]))
    on_lift(state, lift("D3", 1))
    assert on_delta(state, delta("D1", 1, 1, "fable-5", added=[7])).acks == ()
    assert on_delta(state, delta("D3", 1, 1, "fable-5", added=[7])).acks == ()
    assert state.held["D1"].sets == {"fable-5": BitMap([4])} and "D3" not in state.held


def test_a_user_both_added_and_removed_stays_denied() -> None:
    state = _held()
    on_delta(state, delta("D1", 1, 1, "fable-5", added=[5], removed=[5]))
    assert 5 in state.held["D1"].sets["fable-5"]


def test_a_corrupt_delta_fails_and_changes_nothing() -> None:
    state = _held()
    before = state.held["D1"]
    outcome = on_delta(state, delta("D1", 1, 1, "fable-5", added="!!not base64!!"))
    assert isinstance(outcome.acks[0], Failed) and "delta 1" in outcome.acks[0].reason
    assert state.held["D1"] is before and state.pending == {}


def test_a_new_revision_drops_deltas_buffered_for_the_old_one() -> None:
    state = _held()
    on_delta(state, delta("D1", 1, 2, "fable-5", added=[7]))
    on_restrict(state, restrict("D1", 2, "fable-5", [1]))
    assert state.pending == {} and state.held["D1"].seq == 0
