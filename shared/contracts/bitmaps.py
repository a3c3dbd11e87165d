"""Affected sets on the wire: 32-bit roaring bitmaps, portable serialisation, base64 in JSON.

The digest of an affected set is defined here, once, for every service and the audit:
  set digest   = SHA-256 over the ids in ascending order, each as a little-endian uint32.
  scope digest = SHA-256 over the lines "<model>:<set digest hex>\\n" for every model in ascending
                 model-name order.
Both are lowercase hex strings.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping

import numpy as np
from pyroaring import BitMap

CHUNK_IDS = 200_000  # ids per chunk; a chunk's serialised bitmap stays far below 1 MiB


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


def set_digest(bitmap: BitMap) -> str:
    """SHA-256 of the ascending ids as little-endian uint32 (see module docstring)."""
    return hashlib.sha256(bitmap_ids(bitmap).astype("<u4", copy=False).tobytes()).hexdigest()


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


def chunk_bitmap(bitmap: BitMap, ids_per_chunk: int = CHUNK_IDS) -> list[BitMap]:
    """Split a bitmap into consecutive chunks of at most ids_per_chunk ids (one empty chunk if empty).

    Each chunk is the intersection with an id range, so no id is touched one by one in Python
    (10M ids: tens of milliseconds).
    """
    size = len(bitmap)
    if not size:
        return [BitMap()]
    return [bitmap & BitMap(range(bitmap[start], bitmap[min(start + ids_per_chunk, size) - 1] + 1))
            for start in range(0, size, ids_per_chunk)]


def union(bitmaps: Iterable[BitMap]) -> BitMap:
    """Union of several bitmaps."""
    return BitMap.union(BitMap(), *bitmaps)
