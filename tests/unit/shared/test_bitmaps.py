"""The wire encoding and digest of affected sets, as defined once in shared.contracts.bitmaps."""

from __future__ import annotations

import hashlib
import struct

import pytest
from pyroaring import BitMap

from shared.contracts.bitmaps import chunk_bitmap, decode_bitmap, encode_bitmap, scope_digest, set_digest, union


def test_set_digest_is_sha256_of_ascending_little_endian_uint32_ids() -> None:
    ids = [7, 3, 2**32 - 1, 0]
    expected = hashlib.sha256(b"".join(struct.pack("<I", i) for i in sorted(ids))).hexdigest()
    assert set_digest(BitMap(ids)) == expected


def test_set_digest_does_not_depend_on_insertion_order() -> None:
    assert set_digest(BitMap([5, 1, 9])) == set_digest(BitMap([9, 5, 1]))


def test_empty_set_digest_is_digest_of_no_bytes() -> None:
    assert set_digest(BitMap()) == hashlib.sha256(b"").hexdigest()


def test_scope_digest_orders_models_by_name() -> None:
    per_model = {"mythos-5": "b" * 64, "fable-5": "a" * 64}
    lines = f"fable-5:{'a' * 64}\nmythos-5:{'b' * 64}\n"
    assert scope_digest(per_model) == hashlib.sha256(lines.encode()).hexdigest()
    assert scope_digest({}) == hashlib.sha256(b"").hexdigest()


def test_encoding_round_trips() -> None:
    bitmap = BitMap(range(0, 1_000_000, 3))
    assert decode_bitmap(encode_bitmap(bitmap)) == bitmap


@pytest.mark.parametrize("text", ["not base64!!", "AAAA", ""])
def test_corrupt_bitmap_is_rejected_with_a_reason(text: str) -> None:
    with pytest.raises(ValueError, match="bitmap"):
        decode_bitmap(text)


def test_chunks_partition_the_set_in_order() -> None:
    bitmap = BitMap(range(0, 50_000, 2))
    chunks = chunk_bitmap(bitmap, ids_per_chunk=7_000)
    assert [len(c) for c in chunks] == [7_000, 7_000, 7_000, 4_000]
    assert union(chunks) == bitmap
    assert max(chunks[0]) < min(chunks[1])


def test_empty_set_travels_as_one_empty_chunk() -> None:
    assert chunk_bitmap(BitMap()) == [BitMap()]


def test_a_delta_removes_then_adds_so_an_id_in_both_stays_in_with_or_without_a_copy() -> None:
    from shared.contracts.bitmaps import apply_delta, apply_delta_in_place

    users, added, removed = BitMap([1, 2, 3]), BitMap([3, 9]), BitMap([2, 3])
    assert apply_delta(users, added, removed) == BitMap([1, 3, 9]) and users == BitMap([1, 2, 3])
    apply_delta_in_place(users, added, removed)
    assert users == BitMap([1, 3, 9])
