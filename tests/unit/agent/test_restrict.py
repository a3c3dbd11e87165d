"""Restrict commands: staged per revision, applied atomically, idempotent, failing without side effects."""

from __future__ import annotations

from datetime import UTC, datetime

from pyroaring import BitMap

from services.agent.access import AccessIndex
from services.agent.command_effects import Applied, Failed, on_delta, on_lift, on_restrict
from services.agent.restrictions import Restrictions
from shared.contracts.bitmaps import scope_digest, set_digest
from tests.unit.agent.builders import delta, lift, restrict

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def _two_models_in_three_chunks() -> list:
    return [
        restrict("D1", 1, "fable-5", [1, 2], chunk=0, chunks=3),
        restrict("D1", 1, "fable-5", [3], chunk=1, chunks=3),
        restrict("D1", 1, "mythos-5", [2, 9], chunk=2, chunks=3),
    ]


def test_nothing_is_held_until_every_chunk_has_arrived() -> None:
    state = Restrictions()
    first, second, third = _two_models_in_three_chunks()
    assert on_restrict(state, first).acks == ()
    assert on_restrict(state, third).acks == ()
    assert "D1" not in state.held
    assert AccessIndex.of(state.held).check(1, "fable-5", NOW).decision == "allow"
    outcome = on_restrict(state, second)
    assert outcome.held_changed
    assert state.held["D1"].sets == {"fable-5": BitMap([1, 2, 3]), "mythos-5": BitMap([2, 9])}
    assert state.staging == {}


def test_ack_digest_is_the_scope_digest_of_the_held_sets() -> None:
    state = Restrictions()
    acks = [ack for command in _two_models_in_three_chunks() for ack in on_restrict(state, command).acks]
    expected = scope_digest({"fable-5": set_digest(BitMap([1, 2, 3])), "mythos-5": set_digest(BitMap([2, 9]))})
    assert acks == [Applied("D1", 1, "restrict", expected, 0)]
    assert state.digest("D1") == expected


def test_a_new_revision_replaces_the_sets_and_an_older_one_is_refused_as_replayed() -> None:
    state = Restrictions()
    on_restrict(state, restrict("D1", 2, "fable-5", [5]))
    (refusal,) = on_restrict(state, restrict("D1", 1, "fable-5", [1, 2])).acks
    assert isinstance(refusal, Failed) and refusal.reason.startswith("refused: replayed: revision 1")
    assert state.held["D1"].revision == 2 and state.held["D1"].sets == {"fable-5": BitMap([5])}
    on_restrict(state, restrict("D1", 3, "mythos-5", [7]))
    assert state.held["D1"].sets == {"mythos-5": BitMap([7])}


def test_a_duplicate_of_the_held_revision_is_acknowledged_again_without_reapplying() -> None:
    state = Restrictions()
    first = on_restrict(state, restrict("D1", 1, "fable-5", [1]))
    again = on_restrict(state, restrict("D1", 1, "fable-5", [1]))
    assert again.acks == first.acks
    assert not again.held_changed and not again.touched
    assert state.held["D1"].sets == {"fable-5": BitMap([1])} and state.staging == {}


def test_a_held_revision_resent_with_other_content_replaces_the_sets() -> None:
    state = Restrictions()
    on_restrict(state, restrict("D1", 1, "fable-5", [1]))
    on_delta(state, delta("D1", 1, 3, "fable-5", added=[8]))  # waits for seq 2, which never comes
    corrected = scope_digest({"fable-5": set_digest(BitMap([1, 7, 8]))})
    assert on_restrict(state, restrict("D1", 1, "fable-5", [1, 7], 0, 2, expected=corrected)).acks == ()
    outcome = on_restrict(state, restrict("D1", 1, "fable-5", [8], 1, 2, expected=corrected))
    assert outcome.acks == (Applied("D1", 1, "restrict", corrected, 3),)
    assert state.held["D1"].sets == {"fable-5": BitMap([1, 7, 8])} and state.pending == {}
    assert on_delta(state, delta("D1", 1, 2, "fable-5", added=[99])).acks[0].seq == 3
    assert 99 not in state.held["D1"].sets["fable-5"]


def test_a_redelivered_chunk_is_staged_once() -> None:
    state = Restrictions()
    on_restrict(state, restrict("D1", 1, "fable-5", [1], chunk=0, chunks=2))
    assert on_restrict(state, restrict("D1", 1, "fable-5", [1], chunk=0, chunks=2)).acks == ()
    assert "D1" not in state.held
    assert len(state.staging[("D1", 1)].parts) == 1


def test_a_corrupt_bitmap_fails_discards_the_staging_and_keeps_what_is_held() -> None:
    state = Restrictions()
    on_restrict(state, restrict("D1", 1, "fable-5", [1, 2]))
    held_before = state.held["D1"]
    on_restrict(state, restrict("D1", 2, "fable-5", [8], chunk=0, chunks=2))
    outcome = on_restrict(state, restrict("D1", 2, "mythos-5", "bm90IGEgYml0bWFw", chunk=1, chunks=2))
    assert len(outcome.acks) == 1 and isinstance(outcome.acks[0], Failed)
    assert "chunk 1" in outcome.acks[0].reason and "roaring" in outcome.acks[0].reason
    assert ("D1", 2) not in state.staging
    assert state.held["D1"] is held_before


def test_a_chunk_index_beyond_the_chunk_count_fails() -> None:
    state = Restrictions()
    outcome = on_restrict(state, restrict("D1", 1, "fable-5", [1], chunk=2, chunks=2))
    assert isinstance(outcome.acks[0], Failed) and "out of range" in outcome.acks[0].reason
    assert state.held == {} and state.staging == {}


def test_chunks_disagreeing_on_the_chunk_count_fail_the_revision() -> None:
    state = Restrictions()
    on_restrict(state, restrict("D1", 1, "fable-5", [1], chunk=0, chunks=3))
    outcome = on_restrict(state, restrict("D1", 1, "fable-5", [2], chunk=1, chunks=2))
    assert isinstance(outcome.acks[0], Failed)
    assert state.held == {} and state.staging == {}


def test_a_restrict_redelivered_after_its_lift_does_not_come_back() -> None:
    state = Restrictions()
    on_restrict(state, restrict("D1", 1, "fable-5", [1]))
    on_lift(state, lift("D1", 1))
    (refusal,) = on_restrict(state, restrict("D1", 1, "fable-5", [1])).acks
    assert isinstance(refusal, Failed) and "revision 1 was lifted" in refusal.reason
    assert "D1" not in state.held
    on_restrict(state, restrict("D1", 2, "fable-5", [4]))
    assert state.held["D1"].revision == 2


def test_a_restrict_past_the_directives_expiry_is_refused_and_changes_nothing() -> None:
    state = Restrictions()
    expired = restrict("D1", 1, "fable-5", [1]).model_copy(update={"expires_at": datetime(2026, 1, 1, tzinfo=UTC)})
    outcome = on_restrict(state, expired, datetime(2026, 1, 2, tzinfo=UTC))
    (refusal,) = outcome.acks
    assert isinstance(refusal, Failed) and refusal.reason.startswith("refused: expired")
    assert state.held == {} and state.staging == {} and not outcome.touched
