"""Restrict commands by reference in the pure core and the store: nothing changes until the sets are read; then the
revision is applied whole, written whole, and a re-send of what is held is confirmed without reading anything."""

from __future__ import annotations

from pathlib import Path

from pyroaring import BitMap

from services.agent.command_effects import Applied, Failed, on_delta, on_restrict, refuse_sets
from services.agent.restriction_store import RestrictionStore
from services.agent.restrictions import Restrictions
from shared.contracts.bitmaps import SetDigest, scope_digest, set_digest
from shared.contracts.serving import RestrictCommand
from shared.contracts.set_copies import SetReference
from tests.unit.agent.builders import CLUSTER, delta, restrict

SETS = {"fable-5": BitMap(range(0, 300, 3)), "mythos-5": BitMap([7, 70_000, 900_000])}


def by_reference(directive: str = "D-1", revision: int = 1, sets: dict[str, BitMap] = SETS) -> RestrictCommand:
    refs = [
        SetReference(model=m, version=0, partition=1, offsets=[10 + i], chunk_digests=["0" * 64], digest=set_digest(u))
        for i, (m, u) in enumerate(sorted(sets.items()))
    ]
    return RestrictCommand(
        producer="enforcement",
        cluster_id=CLUSTER,
        directive_id=directive,
        revision=revision,
        chunk=0,
        chunks=1,
        sets=refs,
        expected_digest=scope_digest({m: set_digest(u) for m, u in sets.items()}),
    )


def test_a_command_by_reference_asks_for_its_sets_and_changes_nothing_until_then() -> None:
    state = Restrictions()
    outcome = on_restrict(state, by_reference())
    assert outcome.needs_sets and not outcome.acks and not outcome.touched
    assert state == Restrictions()


def test_with_its_sets_the_revision_is_applied_whole_and_acknowledged_with_their_digest() -> None:
    state, command = Restrictions(), by_reference()
    outcome = on_restrict(state, command, None, {m: BitMap(u) for m, u in SETS.items()})
    [ack] = outcome.acks
    assert isinstance(ack, Applied) and ack.digest == command.expected_digest
    assert state.held["D-1"].sets == SETS and state.staging == {}
    assert outcome.completed is not None and outcome.completed[2] == (0, 1)  # both models arrived with it


def test_a_re_send_of_the_held_revision_is_confirmed_without_reading_its_sets() -> None:
    state = Restrictions()
    on_restrict(state, by_reference(), None, {m: BitMap(u) for m, u in SETS.items()})
    again = on_restrict(state, by_reference())  # a fresh id, the same revision and digest
    assert not again.needs_sets and [type(a) for a in again.acks] == [Applied]


def test_an_unusable_copy_is_a_refusal_that_changes_nothing() -> None:
    state = Restrictions()
    on_restrict(state, by_reference(), None, {m: BitMap(u) for m, u in SETS.items()})
    held = state.held["D-1"]
    outcome = refuse_sets(by_reference(revision=2), "set copy of fable-5, chunk 0: its bytes do not match")
    [failed] = outcome.acks
    assert isinstance(failed, Failed) and failed.reason.startswith("refused: set copy of fable-5")
    assert state.held["D-1"] is held and not outcome.touched


def test_a_revision_by_reference_is_written_whole_and_read_back_after_a_restart(tmp_path: Path) -> None:
    store = RestrictionStore(tmp_path / "agent.sqlite3")
    state = Restrictions()
    first = on_restrict(state, restrict("D-1", 1, "fable-5", [1, 2]))
    store.record(state, "D-1", first, 0, 0)
    outcome = on_restrict(state, by_reference(revision=2), None, {m: BitMap(u) for m, u in SETS.items()})
    store.record(state, "D-1", outcome, 0, 1)
    store.close()
    loaded, offsets = RestrictionStore(tmp_path / "agent.sqlite3").load()
    assert loaded.held["D-1"].revision == 2 and loaded.held["D-1"].sets == SETS
    assert loaded.digest("D-1") == by_reference().expected_digest and offsets == {0: 2}


def test_an_inline_command_already_on_the_topic_is_still_applied() -> None:
    state = Restrictions()
    outcome = on_restrict(state, restrict("D-1", 1, "fable-5", [4, 5]))
    assert [type(a) for a in outcome.acks] == [Applied] and state.held["D-1"].sets == {"fable-5": BitMap([4, 5])}


def test_digests_combined_from_the_copies_are_held_as_they_are_and_a_delta_updates_them() -> None:
    state, command = Restrictions(), by_reference()
    combined = {m: SetDigest.of(u) for m, u in SETS.items()}  # as the set reader combines them from range digests
    outcome = on_restrict(state, command, None, {m: BitMap(u) for m, u in SETS.items()}, dict(combined))
    [ack] = outcome.acks
    assert isinstance(ack, Applied) and ack.digest == command.expected_digest
    assert all(state.held["D-1"].set_digests[m] is combined[m] for m in SETS)  # not hashed again
    on_delta(state, delta("D-1", 1, 1, "mythos-5", added=[1_000_000]))
    assert state.digest("D-1") == scope_digest(
        {"fable-5": set_digest(SETS["fable-5"]), "mythos-5": set_digest(SETS["mythos-5"] | BitMap([1_000_000]))}
    )


def test_a_revision_by_reference_is_written_as_held_sets_at_once_leaving_nothing_to_fold(tmp_path: Path) -> None:
    store = RestrictionStore(tmp_path / "agent.sqlite3")
    state = Restrictions()
    store.record(state, "D-1", on_restrict(state, restrict("D-1", 1, "fable-5", [1, 2], chunk=0, chunks=2)), 0, 0)
    store.record(state, "D-1", on_restrict(state, restrict("D-1", 1, "mythos-5", [3], chunk=1, chunks=2)), 0, 1)
    assert store.fold(state) == 1  # a revision that came in chunks is written whole later
    outcome = on_restrict(state, by_reference(revision=2), None, {m: BitMap(u) for m, u in SETS.items()})
    store.record(state, "D-1", outcome, 0, 2)
    assert store._db.execute("SELECT count(*) FROM staged").fetchone() == (0,)
    assert store.fold(state) == 0  # nothing to write again
    store.close()
    loaded, _ = RestrictionStore(tmp_path / "agent.sqlite3").load()
    assert loaded.held["D-1"].revision == 2 and loaded.held["D-1"].sets == SETS
    on_delta(loaded, delta("D-1", 2, 1, "mythos-5", added=[1]))  # each model's set is its own after a restart
    assert 1 in loaded.held["D-1"].sets["mythos-5"] and 1 not in loaded.held["D-1"].sets["fable-5"]


def test_sets_read_by_reference_are_held_without_a_copy_and_one_bitmap_given_twice_is_held_as_two() -> None:
    state, given = Restrictions(), {m: BitMap(u) for m, u in SETS.items()}
    on_restrict(state, by_reference(), None, given)
    assert all(state.held["D-1"].sets[m] is given[m] for m in SETS)
    shared = BitMap(range(0, 300, 3))
    both = {"fable-5": shared, "mythos-5": shared}
    on_restrict(state, by_reference("D-2", sets={m: BitMap(shared) for m in both}), None, both)
    held = state.held["D-2"].sets
    assert held["fable-5"] == held["mythos-5"] == shared and held["fable-5"] is not held["mythos-5"]
    on_delta(state, delta("D-2", 1, 1, "mythos-5", added=[1]))
    assert 1 in held["mythos-5"] and 1 not in held["fable-5"]
