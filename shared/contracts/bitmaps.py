"""Affected sets on the wire (32-bit roaring bitmaps, base64 in JSON) and the one digest definition,
`ids_digest` (set digests per id range combined, and scope digests: shared/README.md, Digests).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
from pyroaring import BitMap

CHUNK_IDS = 200_000  # ids per chunk; a chunk's serialised bitmap stays far below 1 MiB
DIGEST_SLICE = 1 << 19  # ids hashed at a time: a set's ids are materialised 2 MiB at a time, however dense
RANGE_BITS = 16  # a range: the 2^16 ids sharing their high 16 bits (one roaring container)
GROUP_RANGE_BITS = 8  # a group: the 256 ranges sharing their id's high byte


def encode_bitmap(bitmap: BitMap) -> str:
    """Serialise a bitmap (run-optimised, portable format) into base64 text for JSON."""
    bitmap = BitMap(bitmap)
    bitmap.run_optimize()
    return base64.b64encode(bitmap.serialize()).decode("ascii")


def decode_bitmap(text: str) -> BitMap:
    """Parse base64 portable roaring bytes; raises ValueError naming the problem."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"bitmap is not valid base64: {exc}") from exc
    try:
        return BitMap.deserialize(raw)
    except Exception as exc:  # pyroaring raises plain exceptions on corrupt input
        raise ValueError(f"bitmap bytes are not a valid roaring bitmap: {exc}") from exc


def bitmap_ids(bitmap: BitMap) -> np.ndarray:
    """The ids of a bitmap as an ascending uint32 array, without a per-id Python loop."""
    return np.frombuffer(bitmap.to_array(), dtype=np.uint32) if len(bitmap) else np.empty(0, np.uint32)


def ids_digest(blocks: Iterable[np.ndarray]) -> str:
    """The set digest of ids given as consecutive blocks of ascending ids (shared/README.md, Digests)."""
    return combine_ranges(range_digests(blocks))


def range_digests(blocks: Iterable[np.ndarray]) -> dict[int, bytes]:
    """Per non-empty range (id >> 16), SHA-256 of its ids' low 16 bits ascending, each a little-endian uint16.

    The blocks are consecutive and ascending; a range may continue from one block into the next.
    """
    digests: dict[int, bytes] = {}
    current, hashed = -1, hashlib.sha256()
    for block in blocks:
        if not len(block):
            continue
        first, last = int(block[0]) >> RANGE_BITS, int(block[-1]) >> RANGE_BITS
        starts = (np.arange(first + 1, last + 1, dtype=np.uint64) << RANGE_BITS).astype(block.dtype)
        bounds = np.searchsorted(block, starts).tolist()  # the same dtype: no copy of the block to compare
        low = block.astype("<u2")  # the low 16 bits: a narrowing cast keeps them
        for key, start, end in zip(range(first, last + 1), [0, *bounds], [*bounds, len(block)], strict=True):
            if start == end:
                continue
            if key != current:
                if current >= 0:
                    digests[current] = hashed.digest()
                current, hashed = key, hashlib.sha256()
            hashed.update(low[start:end])
    if current >= 0:
        digests[current] = hashed.digest()
    return digests


def combine_ranges(ranges: Mapping[int, bytes]) -> str:
    """The set digest from its non-empty ranges' digests (range number -> range digest)."""
    groups: dict[int, list[tuple[int, bytes]]] = {}
    for key in sorted(ranges):
        groups.setdefault(key >> GROUP_RANGE_BITS, []).append((key, ranges[key]))
    return _combine((group, _combine(members)) for group, members in groups.items()).hex()


def _combine(entries: Iterable[tuple[int, bytes]]) -> bytes:
    """SHA-256 over each entry's number's low byte followed by its digest, entries in ascending order."""
    return hashlib.sha256(b"".join(bytes((number & 0xFF,)) + digest for number, digest in entries)).digest()


def set_digest(bitmap: BitMap) -> str:
    """The set digest of a bitmap; a set larger than DIGEST_SLICE ids is read DIGEST_SLICE ids at a time, so
    that a 50M-user set never materialises all its ids at once."""
    return ids_digest(id_blocks(bitmap))


def id_blocks(bitmap: BitMap) -> Iterable[np.ndarray]:
    """A set's ids, ascending, in consecutive blocks of at most DIGEST_SLICE ids."""
    return [bitmap_ids(bitmap)] if len(bitmap) <= DIGEST_SLICE else _slices(bitmap)


@dataclass
class SetDigest:
    """A set's digest kept per range, so a change re-hashes only the ranges it touched and the two small
    combining levels above them; always equal to set_digest of the set (a test holds it to that)."""

    ranges: dict[int, bytes]
    groups: dict[int, bytes] = field(default_factory=dict)  # group digest per non-empty group

    @classmethod
    def of(cls, bitmap: BitMap) -> SetDigest:
        return cls.from_ranges(range_digests(id_blocks(bitmap)))

    @classmethod
    def from_ranges(cls, ranges: Mapping[int, bytes]) -> SetDigest:
        """From every non-empty range's digest, computed elsewhere (in parallel, block by block)."""
        made = cls(dict(ranges))
        made._regroup({key >> GROUP_RANGE_BITS for key in ranges})
        return made

    def copy(self) -> SetDigest:
        """An independent copy (range digests are immutable bytes: two small dicts are copied)."""
        return SetDigest(dict(self.ranges), dict(self.groups))

    def update(self, bitmap: BitMap, changed: BitMap) -> None:
        """`bitmap` was changed at the ids of `changed` (added or removed): re-hash the ranges they fall in."""
        touched = {user >> RANGE_BITS for user in changed} if len(changed) <= 64 else set(_range_keys(changed))
        for key in touched:
            start = key << RANGE_BITS
            part = bitmap & BitMap(range(start, start + (1 << RANGE_BITS)))
            if part:
                self.ranges[key] = hashlib.sha256(bitmap_ids(part).astype("<u2")).digest()
            else:
                self.ranges.pop(key, None)
        self._regroup({key >> GROUP_RANGE_BITS for key in touched})

    def hexdigest(self) -> str:
        return _combine(sorted(self.groups.items())).hex()

    def _regroup(self, groups: set[int]) -> None:
        for group in groups:
            first = group << GROUP_RANGE_BITS
            members = [(k, self.ranges[k]) for k in range(first, first + (1 << GROUP_RANGE_BITS)) if k in self.ranges]
            if members:
                self.groups[group] = _combine(members)
            else:
                self.groups.pop(group, None)


def _range_keys(bitmap: BitMap) -> list[int]:
    return np.unique(bitmap_ids(bitmap) >> RANGE_BITS).tolist()  # Python ints: key << 16 must not wrap


def _slices(bitmap: BitMap) -> Iterable[np.ndarray]:
    """The ids of a set in consecutive blocks of DIGEST_SLICE ids (the last may be shorter): each block is the
    set within the id window from its first id to its last, found by rank (select), so a dense set and a
    sparse one cost the same number of blocks per id."""
    window = BitMap()
    size = len(bitmap)
    for first in range(0, size, DIGEST_SLICE):
        window.clear()
        window.add_range(bitmap[first], bitmap[min(first + DIGEST_SLICE, size) - 1] + 1)
        yield bitmap_ids(bitmap & window)


def sets_digest(sets: Mapping[str, BitMap]) -> str:
    """The scope digest of per-model sets."""
    return scope_digest({model: set_digest(users) for model, users in sets.items()})


def apply_delta(users: BitMap, added: BitMap, removed: BitMap) -> BitMap:
    """A delta's effect on a set: removals first, then additions, so an id in both stays in (denied).

    Impact computes a delta's model digest this way; enforcement and agents must hold the same set.
    """
    return (users - removed) | added


def apply_delta_in_place(users: BitMap, added: BitMap, removed: BitMap) -> None:
    """apply_delta without a copy, for a large set nothing else refers to."""
    users -= removed
    users |= added


def scope_digest(per_model: Mapping[str, str]) -> str:
    """Combine per-model set digests into one digest, in model-name order."""
    lines = "".join(f"{model}:{per_model[model]}\n" for model in sorted(per_model))
    return hashlib.sha256(lines.encode()).hexdigest()


EMPTY_SCOPE_DIGEST = scope_digest({})  # what a cluster holds for a directive it holds nothing of


def chunk_bitmap(bitmap: BitMap, ids_per_chunk: int = CHUNK_IDS) -> list[BitMap]:
    """Split a bitmap into consecutive chunks of at most ids_per_chunk ids (one empty chunk if empty).

    Each chunk is the intersection with an id range, so no id is touched one by one in Python
    (10M ids: tens of milliseconds).
    """
    size = len(bitmap)
    if not size:
        return [BitMap()]
    return [
        bitmap & BitMap(range(bitmap[start], bitmap[min(start + ids_per_chunk, size) - 1] + 1))
        for start in range(0, size, ids_per_chunk)
    ]


def union(bitmaps: Iterable[BitMap]) -> BitMap:
    """Union of several bitmaps."""
    return BitMap.union(BitMap(), *bitmaps)
