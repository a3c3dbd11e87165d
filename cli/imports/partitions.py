"""Kafka's default partitioner (murmur2 of the key, as the Java client and aiokafka) over a whole column of
keys at once: the fast variant of shared.runtime.topics.partition_for, which a unit test holds it equal to."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

SEED = np.uint32(0x9747B28C)
M = np.uint32(0x5BD1E995)


def partitions_for(keys: pa.Array, partitions: int) -> np.ndarray:
    """The partition of each key (a binary or string column without nulls), as partition_for computes it."""
    offsets = np.frombuffer(keys.buffers()[1], dtype=np.int32)[keys.offset : keys.offset + len(keys) + 1]
    data = np.frombuffer(keys.buffers()[2], dtype=np.uint8)
    lengths = np.diff(offsets)
    hashes = np.empty(len(keys), dtype=np.uint32)
    for length in np.unique(lengths):
        rows = np.flatnonzero(lengths == length)
        hashes[rows] = murmur2(_matrix(data, offsets, rows, int(length)))
    return ((hashes & np.uint32(0x7FFFFFFF)) % np.uint32(partitions)).astype(np.int64)


def _matrix(data: np.ndarray, offsets: np.ndarray, rows: np.ndarray, length: int) -> np.ndarray:
    """The keys of the given rows, all `length` bytes long, as an (n, length) matrix; a view of the column's
    data when the rows are consecutive (ids exported in order), else gathered."""
    if rows[-1] - rows[0] + 1 == rows.size:
        start = offsets[rows[0]]
        return data[start : start + rows.size * length].reshape(rows.size, length)
    return data[offsets[rows][:, None] + np.arange(length)]


def murmur2(keys: np.ndarray) -> np.ndarray:
    """murmur2 of each row of an (n, length) uint8 matrix: keys of one length."""
    with np.errstate(over="ignore"):
        length = keys.shape[1]
        h = np.full(keys.shape[0], SEED ^ np.uint32(length), dtype=np.uint32)
        words = keys[:, : length // 4 * 4].astype(np.uint32)
        for i in range(0, length // 4 * 4, 4):
            k = words[:, i] | words[:, i + 1] << 8 | words[:, i + 2] << 16 | words[:, i + 3] << 24
            k *= M
            k ^= k >> np.uint32(24)
            k *= M
            h *= M
            h ^= k
        tail = length & ~3
        extra = length % 4
        if extra >= 3:
            h ^= keys[:, tail + 2].astype(np.uint32) << 16
        if extra >= 2:
            h ^= keys[:, tail + 1].astype(np.uint32) << 8
        if extra >= 1:
            h ^= keys[:, tail].astype(np.uint32)
            h *= M
        h ^= h >> np.uint32(13)
        h *= M
        h ^= h >> np.uint32(15)
        return h
