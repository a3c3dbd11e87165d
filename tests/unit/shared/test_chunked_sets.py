"""One reassembly of a chunked set, used by enforcement, the notifier and every agent."""

from __future__ import annotations

from itertools import permutations

import pytest
from pyroaring import BitMap

from shared.contracts.bitmaps import chunk_bitmap
from shared.contracts.chunks import ChunkedSets

FABLE, MYTHOS = BitMap(range(0, 50)), BitMap(range(40, 70))
CHUNKS = [("fable-5", part) for part in chunk_bitmap(FABLE, 20)] + [
    ("mythos-5", part) for part in chunk_bitmap(MYTHOS, 20)
]


@pytest.mark.parametrize("order", list(permutations(range(len(CHUNKS))))[::7])
def test_the_sets_are_whole_once_every_chunk_arrived_in_any_order(order: tuple[int, ...]) -> None:
    received = ChunkedSets()
    received.announce(len(CHUNKS))
    for position, index in enumerate(order):
        assert not received.complete and received.missing == sorted(set(range(len(CHUNKS))) - set(order[:position]))
        received.add(index, len(CHUNKS), *CHUNKS[index])
    assert received.complete and received.sets() == {"fable-5": FABLE, "mythos-5": MYTHOS}


def test_the_first_copy_of_a_chunk_wins() -> None:
    received = ChunkedSets()
    assert received.add(0, 2, "fable-5", BitMap([1]))
    assert not received.add(0, 2, "fable-5", BitMap([2]))
    assert received.sets() == {"fable-5": BitMap([1])}


def test_models_asked_for_are_present_even_without_chunks() -> None:
    received = ChunkedSets()
    received.add(0, 1, "fable-5", BitMap([1]))
    assert received.sets(["mythos-5", "fable-5"]) == {"fable-5": BitMap([1]), "mythos-5": BitMap()}


def test_a_chunk_out_of_range_or_disagreeing_on_the_total_is_refused_and_nothing_kept() -> None:
    received = ChunkedSets()
    with pytest.raises(ValueError, match="out of range"):
        received.add(2, 2, "fable-5", BitMap([1]))
    received.announce(2)
    with pytest.raises(ValueError, match="says 3 chunks"):
        received.add(0, 3, "fable-5", BitMap([1]))
    assert received.parts == {}


def test_an_announced_total_must_agree_with_the_chunks_already_received() -> None:
    received = ChunkedSets()
    received.add(3, 4, "fable-5", BitMap([1]))
    with pytest.raises(ValueError, match="chunk 3 already arrived"):
        received.announce(2)
    received.announce(4)
    with pytest.raises(ValueError, match="earlier parts said 4"):
        received.announce(5)
