"""The wire encoding and digest of affected sets, as defined once in shared.contracts.bitmaps."""

from __future__ import annotations

import hashlib
import struct

import pytest
from pyroaring import BitMap

from shared.contracts.bitmaps import chunk_bitmap, decode_bitmap, encode_bitmap, scope_digest, set_digest, union


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def test_set_digest_combines_range_digests_in_groups_of_256_ranges() -> None:
    # id 7, 3 and 0: group 0, range 0; 70,000: group 0, range 1; 2^32 - 1: group 255, range 255 of it
    ids = [7, 3, 70_000, 2**32 - 1, 0]
    range_0 = _sha(struct.pack("<HHH", 0, 3, 7))
    range_1 = _sha(struct.pack("<H", 70_000 - 65_536))
    range_last = _sha(struct.pack("<H", 0xFFFF))
    group_0 = _sha(b"\x00" + range_0 + b"\x01" + range_1)
    group_255 = _sha(b"\xff" + range_last)
    expected = hashlib.sha256(b"\x00" + group_0 + b"\xff" + group_255).hexdigest()
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
