"""Affected sets on the wire (32-bit roaring bitmaps, base64 in JSON) and the one digest definition,
`ids_digest` (set and scope digests: shared/README.md, Digests).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping

import numpy as np
from pyroaring import BitMap

CHUNK_IDS = 200_000  # ids per chunk; a chunk's serialised bitmap stays far below 1 MiB
DIGEST_SLICE = 1 << 22  # ids of the id space hashed at a time: at most 16 MiB of ids materialised at once


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
    """The set digest of ids given as consecutive blocks of ascending ids (see module docstring)."""
    digest = hashlib.sha256()
    for block in blocks:
        digest.update(block.astype("<u4", copy=False))
    return digest.hexdigest()


def set_digest(bitmap: BitMap) -> str:
    """SHA-256 of the ascending ids as little-endian uint32; a set larger than DIGEST_SLICE ids is hashed
    one slice of the id space at a time, so that a 50M-user set never materialises all its ids at once."""
    return ids_digest([bitmap_ids(bitmap)] if len(bitmap) <= DIGEST_SLICE else _slices(bitmap))


def _slices(bitmap: BitMap) -> Iterable[np.ndarray]:
    if not bitmap:
        return
    window = BitMap()
    for start in range(bitmap.min() & ~(DIGEST_SLICE - 1), bitmap.max() + 1, DIGEST_SLICE):
        window.clear()
        window.add_range(start, start + DIGEST_SLICE)
        part = bitmap & window
        if part:
            yield bitmap_ids(part)


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
