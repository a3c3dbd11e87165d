"""The set digest is defined once (shared.contracts.bitmaps); every faster way to compute it agrees, and the
digest kept per range and updated by changes equals the digest computed from scratch."""

from __future__ import annotations

import hashlib
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyroaring import BitMap

from services.impact.affected import rows_bitmap, rows_digest
from shared.contracts.bitmaps import (
    DIGEST_SLICE,
    EMPTY_SCOPE_DIGEST,
    SetDigest,
    apply_delta_in_place,
    ids_digest,
    scope_digest,
    set_digest,
    sets_digest,
)
from shared.contracts.set_copies import decode_chunk, encode_set

SPREADS = [
    [],
    [0],
    [2**32 - 1],
    [0, 2**32 - 1],
    [65_535, 65_536, 2**24 - 1, 2**24],
    [DIGEST_SLICE - 1, DIGEST_SLICE, 3 * DIGEST_SLICE + 5],
    np.random.default_rng(1).integers(0, 2**32, 10_000).tolist(),
    np.random.default_rng(2).choice(5 * DIGEST_SLICE, 200_000, replace=False).tolist(),
    # more ids than one block holds, dense enough that block boundaries fall inside ranges
    np.random.default_rng(3).choice(3 * DIGEST_SLICE, 2 * DIGEST_SLICE + 7, replace=False).tolist(),
]


def _literal(users: BitMap) -> str:
    """The definition read literally, one id at a time: range digests, group digests, the set digest."""
    groups: dict[int, dict[int, list[int]]] = {}
    for user in sorted(users):
        groups.setdefault(user >> 24, {}).setdefault((user >> 16) & 0xFF, []).append(user & 0xFFFF)
    top = b""
    for group, ranges in sorted(groups.items()):
        middle = b"".join(
            bytes([number]) + hashlib.sha256(b"".join(struct.pack("<H", low) for low in lows)).digest()
            for number, lows in sorted(ranges.items())
        )
        top += bytes([group]) + hashlib.sha256(middle).digest()
    return hashlib.sha256(top).hexdigest()


@pytest.mark.parametrize("ids", SPREADS)
def test_every_way_of_computing_the_set_digest_equals_the_definition_whatever_the_ids_spread(ids: list[int]) -> None:
    users = BitMap(ids)
    expected = _literal(users)
    assert set_digest(users) == SetDigest.of(users).hexdigest() == expected
    ascending = np.array(sorted(users), dtype=np.uint32)
    assert ids_digest(np.array_split(ascending, 7)) == expected  # blocks that cut ranges anywhere


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_impact_mask_digest_equals_the_set_digest_of_the_mask_rows(seed: int) -> None:
    mask = np.random.default_rng(seed).random(300_000) < 0.3
    assert rows_digest(mask) == set_digest(rows_bitmap(mask))


IDS = st.one_of(
    st.integers(0, 3 * 65_536),  # a few neighbouring ranges of one group
    st.integers(2**24 - 65_536, 2**24 + 65_536),  # either side of a group boundary
    st.integers(0, 2**32 - 1),
)


@settings(max_examples=200, deadline=None)
@given(
    start=st.lists(IDS, max_size=300),
    changes=st.lists(st.tuples(st.lists(IDS, max_size=20), st.lists(IDS, max_size=20)), max_size=12),
)
def test_a_digest_updated_by_random_adds_and_removes_equals_the_digest_from_scratch(
    start: list[int], changes: list[tuple[list[int], list[int]]]
) -> None:
    users = BitMap(start)
    kept = SetDigest.of(users)
    for added, removed in changes:
        added_ids, removed_ids = BitMap(added), BitMap(removed + start[: len(removed)])  # removes held ids too
        apply_delta_in_place(users, added_ids, removed_ids)
        kept.update(users, added_ids | removed_ids)
        assert kept.hexdigest() == set_digest(users) == _literal(users)


def test_an_update_touching_many_ranges_equals_the_digest_from_scratch() -> None:
    rng = np.random.default_rng(4)
    users = BitMap([*rng.integers(0, 2**26, 50_000).tolist(), 2**32 - 2, 2**32 - 1])
    kept = SetDigest.of(users)
    # more ids than the per-id path takes, up to the last range of the id space
    changed = BitMap([*rng.integers(0, 2**26, 500).tolist(), 2**32 - 1, 2**32 - 70_000])
    users ^= changed
    kept.update(users, changed)
    assert kept.hexdigest() == set_digest(users)


def test_sets_digest_is_the_scope_digest_of_each_models_set_digest() -> None:
    sets = {"fable-5": BitMap([1, 2, 3]), "mythos-5": BitMap([9])}
    assert sets_digest(sets) == scope_digest({m: set_digest(u) for m, u in sets.items()})


def test_holding_nothing_is_the_digest_of_the_empty_scope() -> None:
    assert EMPTY_SCOPE_DIGEST == sets_digest({}) == hashlib.sha256(b"").hexdigest()
    assert set_digest(BitMap()) == SetDigest.of(BitMap()).hexdigest() == hashlib.sha256(b"").hexdigest()


COPY_CHUNKINGS = [  # (ids per chunk, bytes per chunk): one id, a few thousand, sparse chunks halved by bytes
    (ids, per_chunk, max_bytes)
    for ids in SPREADS
    for per_chunk, max_bytes in [(1, 10_000), (3_000, 1_000_000), (50_000, 30_000)]
    if per_chunk > 1 or len(ids) < 10
]


@pytest.mark.parametrize(("ids", "ids_per_chunk", "max_bytes"), COPY_CHUNKINGS)
def test_a_set_copy_s_digest_combined_from_its_chunks_range_digests_equals_the_definition(
    ids: list[int], ids_per_chunk: int, max_bytes: int
) -> None:
    users = BitMap(ids)
    encoded = encode_set(users, ids_per_chunk, max_bytes, workers=2)
    chunks = [decode_chunk(value) for value in encoded.values]
    listed = [key for chunk in chunks for key in chunk.ranges or {}]
    assert listed == sorted(set(listed))  # each range whole in one chunk, in order
    for chunk in chunks:  # what each chunk lists is its own users' range digests
        assert SetDigest.of(chunk.users).ranges == chunk.ranges
    combined = SetDigest.from_ranges({k: d for chunk in chunks for k, d in (chunk.ranges or {}).items()})
    assert encoded.digest == combined.hexdigest() == _literal(users)
