"""Pairing a complete affected set with its enforcement confirmation, in either order."""

from __future__ import annotations

import pytest
from pyroaring import BitMap

from services.notifier.pairing import Pairing
from shared.contracts.impact import AssessmentKey

KEY = AssessmentKey("EXP-1", 1, "restrict")


def test_set_then_confirmation_is_ready_only_after_the_confirmation() -> None:
    pairing = Pairing()
    assert pairing.assessed(KEY, 2, {0: 10}) is None
    assert pairing.chunk(KEY, 0, 2, "fable-5", BitMap([1, 2])) is None
    assert pairing.chunk(KEY, 1, 2, "mythos-5", BitMap([2, 3])) is None
    ready = pairing.enforced(KEY, "enf-1")
    assert ready is not None
    assert ready.causation_id == "enf-1"
    assert ready.registry_offsets == {0: 10}
    assert {m: list(s) for m, s in ready.sets.items()} == {"fable-5": [1, 2], "mythos-5": [2, 3]}


def test_confirmation_then_set_is_ready_only_when_the_last_chunk_arrives() -> None:
    pairing = Pairing()
    assert pairing.enforced(KEY, "enf-1") is None
    assert pairing.assessed(KEY, 2, {}) is None
    assert pairing.chunk(KEY, 1, 2, "fable-5", BitMap([5])) is None
    ready = pairing.chunk(KEY, 0, 2, "fable-5", BitMap([4]))
    assert ready is not None and list(ready.sets["fable-5"]) == [4, 5]


def test_chunks_before_their_assessment_wait_for_it() -> None:
    pairing = Pairing()
    pairing.enforced(KEY, "enf-1")
    assert pairing.chunk(KEY, 0, 1, "fable-5", BitMap([7])) is None
    assert pairing.assessed(KEY, 1, {}) is not None


def test_a_set_without_confirmation_or_a_confirmation_without_set_is_never_ready() -> None:
    pairing = Pairing()
    pairing.assessed(KEY, 1, {})
    pairing.chunk(KEY, 0, 1, "fable-5", BitMap([1]))
    other = AssessmentKey("EXP-1", 2, "restrict")
    assert pairing.enforced(other, "enf-2") is None
    assert pairing.enforced(AssessmentKey("EXP-1", 1, "lift"), "enf-3") is None
    assert pairing.ready() == []


def test_duplicates_after_dispatch_produce_nothing_new() -> None:
    pairing = Pairing()
    pairing.assessed(KEY, 1, {})
    pairing.chunk(KEY, 0, 1, "fable-5", BitMap([1]))
    ready = pairing.enforced(KEY, "enf-1")
    assert ready is not None
    pairing.dispatched(KEY)
    assert pairing.enforced(KEY, "enf-1") is None
    assert pairing.enforced(KEY, "enf-again") is None
    assert pairing.assessed(KEY, 1, {}) is None
    assert pairing.chunk(KEY, 0, 1, "fable-5", BitMap([1])) is None
    assert pairing.ready() == []


def test_redelivery_before_dispatch_finished_yields_the_same_pair_again() -> None:
    pairing = Pairing()
    pairing.assessed(KEY, 1, {})
    pairing.chunk(KEY, 0, 1, "fable-5", BitMap([1]))
    first = pairing.enforced(KEY, "enf-1")
    again = pairing.enforced(KEY, "enf-2")
    assert first is not None and again is not None
    assert again.causation_id == "enf-1"  # the first confirmation stays the cause


def test_a_duplicate_chunk_keeps_the_first_copy() -> None:
    pairing = Pairing()
    pairing.enforced(KEY, "enf-1")
    pairing.chunk(KEY, 0, 1, "fable-5", BitMap([1]))
    pairing.chunk(KEY, 0, 1, "fable-5", BitMap([1, 99]))
    ready = pairing.assessed(KEY, 1, {})
    assert ready is not None and list(ready.sets["fable-5"]) == [1]


def test_inconsistent_chunk_numbers_are_rejected_naming_the_field() -> None:
    pairing = Pairing()
    with pytest.raises(ValueError, match="chunk"):
        pairing.chunk(KEY, 3, 2, "fable-5", BitMap())
    pairing.assessed(KEY, 2, {})
    with pytest.raises(ValueError, match="chunks"):
        pairing.chunk(KEY, 0, 3, "fable-5", BitMap())
