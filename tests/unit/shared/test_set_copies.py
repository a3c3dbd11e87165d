"""The binary set-copy record (serving.sets.v1) and the restrict command that references it."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError
from pyroaring import BitMap

from shared.contracts.bitmaps import encode_bitmap, set_digest, union
from shared.contracts.envelope import envelope
from shared.contracts.serving import RestrictCommand
from shared.contracts.set_copies import (
    HEADER,
    HEADER_V1,
    MAGIC_V1,
    RANGE_ENTRY,
    SetReference,
    decode_chunk,
    encode_chunk,
    encode_set,
    value_digest,
)


def _sparse(n: int, space: int, seed: int = 7) -> BitMap:
    rng = np.random.default_rng(seed)
    return BitMap(rng.choice(space, n, replace=False).astype(np.uint32))


def test_a_set_comes_back_whole_from_its_chunks_in_order() -> None:
    users = _sparse(300_000, 3_000_000)
    values = encode_set(users, ids_per_chunk=100_000, max_bytes=200_000).values
    decoded = [decode_chunk(v) for v in values]
    assert [(c.index, c.chunks) for c in decoded] == [(i, len(values)) for i in range(len(values))]
    assert union(c.users for c in decoded) == users and len(values) >= 3
    assert all(len(v) <= 200_000 for v in values)


def test_zstd_is_kept_for_sparse_chunks_and_skipped_for_dense_ones() -> None:
    sparse_ids = _sparse(200_000, 2_000_000)  # bitmap containers a tenth full: zstd halves them
    very_sparse = _sparse(200_000, 20_000_000)  # array containers: zstd saves nothing
    dense = BitMap(range(0, 2_000_000, 1)) - BitMap(range(0, 2_000_000, 3))
    sparse, scattered, full = (encode_chunk(b, 0, 1) for b in (sparse_ids, very_sparse, dense))
    assert (sparse[4], scattered[4], full[4]) == (1, 0, 0)  # the codec byte
    assert len(sparse) < 0.6 * len(sparse_ids.serialize())
    assert decode_chunk(sparse)[2] == sparse_ids and decode_chunk(full)[2] == dense


def test_the_empty_set_is_one_empty_chunk() -> None:
    encoded = encode_set(BitMap(), 10, 1000)
    assert [decode_chunk(v) for v in encoded.values] == [(0, 1, BitMap(), {})]
    assert encoded.digest == set_digest(BitMap())


@pytest.mark.parametrize(
    ("value", "names"),
    [
        (b"", "truncated"),
        (b"CMS1\x00", "truncated"),
        (b"XXXX" + bytes(13) + b"junk", "not a set chunk"),
        (HEADER_V1.pack(b"CMS1", 9, 0, 1, 4) + b"abcd", "codec 9 unknown"),
        (HEADER_V1.pack(b"CMS1", 0, 3, 2, 4) + b"abcd", "out of range"),
        (HEADER_V1.pack(b"CMS1", 1, 0, 1, 4) + b"not zstd", "zstd payload corrupt"),
        (HEADER_V1.pack(b"CMS1", 0, 0, 1, 9) + b"garbage!!", "not a valid roaring bitmap"),
        (encode_chunk(BitMap([1, 2, 3]), 0, 1)[:-2], "roaring bytes, the envelope says"),
        (b"CMS2" + bytes(13), "the envelope alone is 21"),
        (HEADER.pack(b"CMS2", 0, 0, 1, 8, 3) + bytes(40), "its range digests end at"),
        (HEADER.pack(b"CMS2", 7, 0, 1, 8, 0) + bytes(8), "codec 7 unknown"),
    ],
)
def test_a_garbage_or_truncated_chunk_is_refused_naming_the_problem(value: bytes, names: str) -> None:
    with pytest.raises(ValueError, match=names):
        decode_chunk(value)


def _command(**fields: object) -> RestrictCommand:
    return RestrictCommand(
        **envelope("enforcement"),
        cluster_id="us-east",
        directive_id="dir-1",
        revision=1,
        chunk=0,
        chunks=fields.pop("chunks", 1),
        expected_digest="x",
        **fields,
    )


def _reference(model: str = "fable-5") -> SetReference:
    value = encode_chunk(BitMap([1]), 0, 1)
    return SetReference(
        model=model,
        version=0,
        partition=0,
        offsets=[4],
        chunk_digests=[value_digest(value)],
        digest=set_digest(BitMap([1])),
    )


def test_a_restrict_command_carries_references_or_inline_users_never_both() -> None:
    assert _command(sets=[_reference()]).users is None
    assert _command(model="fable-5", users=encode_bitmap(BitMap([1]))).sets is None
    for bad in (
        {},
        {"model": "fable-5", "users": encode_bitmap(BitMap([1])), "sets": [_reference()]},
        {"users": encode_bitmap(BitMap([1]))},
        {"sets": [_reference(), _reference()]},
        {"sets": [_reference()], "chunks": 2},
    ):
        with pytest.raises(ValidationError):
            _command(**bad)


def test_a_reference_lists_one_digest_per_offset() -> None:
    uneven = SetReference.model_validate({**_reference().model_dump(), "offsets": [1, 2]})
    with pytest.raises(ValidationError, match="offsets but"):
        _command(sets=[uneven])


def _with_table(users: BitMap, ranges: dict[int, bytes]) -> bytes:
    """A layout-2 chunk of `users` whose envelope lists these range digests, whatever they are."""
    raw = users.serialize()
    table = np.array(sorted(ranges.items()), RANGE_ENTRY)
    return HEADER.pack(b"CMS2", 0, 0, 1, len(raw), len(ranges)) + table.tobytes() + raw


@pytest.mark.parametrize(
    "listed",
    [{0: bytes(32)}, {0: bytes(32), 1: bytes(32), 5: bytes(32)}, {}],
    ids=["a range missing", "a range the users do not have", "none listed"],
)
def test_a_chunk_whose_range_digests_do_not_list_exactly_its_ranges_is_refused(listed: dict[int, bytes]) -> None:
    with pytest.raises(ValueError, match="do not list exactly the ranges of its users"):
        decode_chunk(_with_table(BitMap([1, 65_536 + 1]), listed))


def test_a_chunk_in_layout_1_is_still_read_and_lists_no_range_digests() -> None:
    users = BitMap([5, 70_000, 2**32 - 1])
    raw = users.serialize()
    chunk = decode_chunk(HEADER_V1.pack(MAGIC_V1, 0, 2, 3, len(raw)) + raw)
    assert chunk == (2, 3, users, None)
