"""One copy of an affected set per (directive, revision, model, version) on `serving.sets.v1`, as binary records:
a small envelope with the chunk's range digests, then its portable roaring bytes, zstd-compressed when that pays
(shared/README.md)."""

from __future__ import annotations

import hashlib
import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal, NamedTuple

import cramjam
import numpy as np
from pydantic import Field
from pyroaring import BitMap

from shared.contracts.bitmaps import RANGE_BITS, bitmap_ids, combine_ranges, range_digests
from shared.contracts.directives import DirectiveId, ModelName
from shared.contracts.envelope import Message

MAGIC = b"CMS2"  # "Countermand set, layout 2": the envelope lists the chunk's range digests
HEADER = struct.Struct(">4sBIIII")  # magic, codec, chunk index, chunks in the set, roaring bytes before compression,
# ranges listed; then per range its number (id >> 16, uint16) and its SHA-256 range digest (32 bytes)
RANGE_ENTRY = np.dtype([("range", ">u2"), ("digest", "S32")])
MAGIC_V1 = b"CMS1"  # layout 1: no range digests (records already on the topic are still read)
HEADER_V1 = struct.Struct(">4sBIII")
RANGE_SIZE = 1 << RANGE_BITS
CODECS = {0: "none", 1: "zstd"}
CODEC_IDS = {name: code for code, name in CODECS.items()}
ZSTD_LEVEL = 1
# zstd is kept for a chunk only when it saves at least this share of the bytes. Measured (docs/scaling.md): it
# halves bitmap containers about 10% full (0.5-1.9 roaring bytes per id), saves under 12% on dense ones (under
# 0.4 B/id: runs or full bitmaps) and nothing on array containers (2 B/id, random 16-bit values), where trying
# costs 50 ms per million ids. So it is tried only in that band, and kept only when it pays.
ZSTD_MIN_SAVING = 0.2
ZSTD_BAND = (0.4, 1.9)  # roaring bytes per id where zstd is tried
MAX_CHUNKS = 4096  # chunks of one set at most (a command lists each one's offset and digest)
CONTENT_TYPE = "application/vnd.countermand.roaring-chunk"
Codec = Literal["none", "zstd"]


class SetChunk(Message):
    """One chunk of one model's affected set on serving.sets.v1: BINARY on the wire, not JSON.

    Kafka key: `<directive_id>:<revision>:<model>:<version>` (UTF-8; every chunk of a set shares it, so the set
    sits on one partition). Value: a 21-byte big-endian envelope, then the chunk's range digests, then the payload:
    magic `CMS2` (4 bytes), codec (1 byte: 0 none, 1 zstd), chunk index (uint32), chunks in the set (uint32), length
    of the roaring bytes before compression (uint32), ranges listed (uint32); per non-empty 2^16-id range of the
    chunk in ascending order its number (id >> 16, uint16) and its range digest (32 bytes, shared/README.md,
    Digests); a chunk holds whole ranges, so the set digest combines every chunk's ranges. The payload is the
    chunk's users as a portable roaring bitmap, compressed by the codec. Layout 1 (magic `CMS1`, a 17-byte envelope
    without the range count and digests) is still read. Headers: `content-type` and the record signature (over
    topic, key and the value's SHA-256, so it covers the envelope). This model documents those fields; it is never
    serialised as JSON.
    """

    directive_id: DirectiveId
    revision: int = Field(..., ge=1, description="Directive revision (from the key).", examples=[1])
    model: ModelName
    version: int = Field(
        ..., ge=0, description="Set version (from the key): the last delta seq folded into the set.", examples=[0]
    )
    chunk: int = Field(..., ge=0, description="Index of this chunk within the set (envelope).", examples=[0])
    chunks: int = Field(..., ge=1, le=MAX_CHUNKS, description="Chunks in the set (envelope).", examples=[3])
    codec: Codec = Field(
        ..., description="Compression of the payload (envelope byte: 0 none, 1 zstd).", examples=["zstd"]
    )
    ranges: dict[int, str] = Field(
        default_factory=dict,
        description="Range digests of the chunk (envelope): range number (id >> 16) -> SHA-256 hex of the range's "
        "low 16 bits ascending, each a little-endian uint16; every non-empty range of the chunk, which holds it whole.",
        examples=[{0: "5e88..."}],
    )
    roaring: bytes = Field(
        ...,
        description="The payload: portable roaring bitmap bytes, compressed by the codec (binary, not base64).",
        examples=[b":0\x00\x00\x01\x00\x00\x00"],
        json_schema_extra={"contentEncoding": "binary", "contentMediaType": CONTENT_TYPE},
    )


class SetReference(Message):
    """Where one model's set for a revision sits on serving.sets.v1, and the digests that make it checkable."""

    model: ModelName
    version: int = Field(..., ge=0, description="Set version: the last delta seq folded into it.", examples=[0])
    partition: int = Field(..., ge=0, description="Partition of serving.sets.v1 holding every chunk.", examples=[2])
    offsets: list[int] = Field(
        ...,
        max_length=MAX_CHUNKS,
        description="Offset of chunk 0, 1, ... in that partition (empty: the empty set).",
        examples=[[1200, 1201]],
    )
    chunk_digests: list[str] = Field(
        ...,
        max_length=MAX_CHUNKS,
        description="SHA-256 (hex) of each chunk record's value, in chunk order.",
        examples=[["5e88...", "9c1f..."]],
    )
    digest: str = Field(
        ...,
        description="Set digest of the model's set: the chunks' range digests combined (shared/README.md, Digests).",
        examples=["9f86d081..."],
    )


def set_key(directive_id: str, revision: int, model: str, version: int) -> bytes:
    """The Kafka key every chunk of one set copy carries."""
    return f"{directive_id}:{revision}:{model}:{version}".encode()


def value_digest(value: bytes) -> str:
    return hashlib.sha256(value).hexdigest()


@dataclass(frozen=True)
class EncodedSet:
    """One model's set as chunk record values, and its set digest combined from the chunks' range digests."""

    values: list[bytes]
    digest: str


class DecodedChunk(NamedTuple):
    """A chunk record read back: its place in the set, its users and (layout 2) its range digests."""

    index: int
    chunks: int
    users: BitMap
    ranges: dict[int, bytes] | None  # None: a layout-1 chunk, which lists none


def encode_chunk(users: BitMap, index: int, chunks: int, codec: Codec | None = None) -> bytes:
    """One chunk's record value (its users must be whole ranges of the set); codec None: zstd when it saves
    ZSTD_MIN_SAVING, else none (decided per chunk)."""
    return pack_chunk(_roaring(users), len(users), index, chunks, _digests(users), codec)


def pack_chunk(
    raw: bytes, ids: int, index: int, chunks: int, ranges: dict[int, bytes], codec: Codec | None = None
) -> bytes:
    """A chunk's record value from its portable roaring bytes holding `ids` ids and its range digests."""
    payload, chosen = raw, "none"
    if codec == "zstd" or (codec is None and ids and ZSTD_BAND[0] <= len(raw) / ids <= ZSTD_BAND[1]):
        packed = bytes(cramjam.zstd.compress(raw, level=ZSTD_LEVEL))
        if codec == "zstd" or len(packed) <= len(raw) * (1 - ZSTD_MIN_SAVING):
            payload, chosen = packed, "zstd"
    table = np.empty(len(ranges), RANGE_ENTRY)
    table["range"] = sorted(ranges)
    table["digest"] = [ranges[key] for key in sorted(ranges)]
    return HEADER.pack(MAGIC, CODEC_IDS[chosen], index, chunks, len(raw), len(ranges)) + table.tobytes() + payload


def encode_set(users: BitMap, ids_per_chunk: int, max_bytes: int, workers: int = 1) -> EncodedSet:
    """One model's set as chunk values of at most max_bytes, each whole ranges of at most ids_per_chunk ids (or one
    range), sparse chunks halved; each range hashed once (on `workers` threads), the set digest combined from them."""
    windows = _windows(users, ids_per_chunk)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        parts = [p for ps in pool.map(lambda w: _fit(_within(users, *w), max_bytes - HEADER.size), windows) for p in ps]
        if len(parts) > MAX_CHUNKS:
            raise ValueError(f"set of {len(users)} users needs {len(parts)} chunks, more than {MAX_CHUNKS}")
        hashed = list(pool.map(_digests, [part for part, _ in parts]))
        values = list(
            pool.map(lambda i: pack_chunk(parts[i][1], len(parts[i][0]), i, len(parts), hashed[i]), range(len(parts)))
        )
    return EncodedSet(values, combine_ranges({key: d for ranges in hashed for key, d in ranges.items()}))


def _windows(users: BitMap, ids_per_chunk: int) -> list[tuple[int, int]]:
    """Consecutive id windows [start, end) on range boundaries, each holding at most ids_per_chunk of the users
    (or one range, when a range alone holds more)."""
    size, windows, position = len(users), [], 0
    while position < size:
        start = users[position] >> RANGE_BITS << RANGE_BITS
        if position + ids_per_chunk >= size:
            windows.append((start, users.max() + 1))
            break
        end = max(users[position + ids_per_chunk] >> RANGE_BITS << RANGE_BITS, start + RANGE_SIZE)
        windows.append((start, end))
        position = users.rank(end - 1)
    return windows or [(0, 0)]


def _within(users: BitMap, start: int, end: int) -> BitMap:
    window = BitMap()
    window.add_range(start, end)
    return users & window


def _digests(users: BitMap) -> dict[int, bytes]:
    return range_digests([bitmap_ids(users)])


def _roaring(users: BitMap) -> bytes:
    bitmap = BitMap(users)
    bitmap.run_optimize()
    return bitmap.serialize()


def _fit(part: BitMap, max_bytes: int) -> list[tuple[BitMap, bytes]]:
    """The part with its roaring bytes, halved by ranges until each half with its range digests fits."""
    raw = _roaring(part)
    keys = container_keys(raw)
    if len(raw) + RANGE_ENTRY.itemsize * len(keys) <= max_bytes or len(keys) <= 1:
        return [(part, raw)]
    middle = int(keys[len(keys) // 2]) << RANGE_BITS
    return _fit(_within(part, 0, middle), max_bytes) + _fit(_within(part, middle, 1 << 32), max_bytes)


def container_keys(raw: bytes) -> np.ndarray:
    """The container keys (range numbers, ascending) listed in portable roaring bytes' header; ValueError if the
    header is not one."""
    if len(raw) < 8:
        raise ValueError(f"{len(raw)} bytes are no roaring header")
    (cookie,) = struct.unpack_from("<I", raw)
    if cookie & 0xFFFF == 12347:  # with run containers: the count in the cookie, then a bitset of run flags
        count, at = (cookie >> 16) + 1, 4 + ((cookie >> 16) + 8) // 8
    elif cookie == 12346:  # no run container: the count follows
        count, at = struct.unpack_from("<I", raw, 4)[0], 8
    else:
        raise ValueError(f"roaring cookie {cookie} unknown")
    if len(raw) < at + 4 * count:
        raise ValueError(f"roaring header of {count} containers truncated")
    return np.frombuffer(raw, "<u2", 2 * count, at)[0::2]


def decode_chunk(value: bytes | None) -> DecodedChunk:
    """A chunk record value read back (layout 2, or 1); ValueError naming what is wrong (truncated, not a set
    chunk, unknown codec, corrupt payload, range digests that do not list the payload's ranges)."""
    magic = (value or b"")[:4]
    if magic not in (MAGIC, MAGIC_V1) and len(value or b"") >= HEADER_V1.size:
        raise ValueError(f"not a set chunk: magic {magic!r}, expected {MAGIC!r}")
    header = HEADER if magic == MAGIC else HEADER_V1
    if value is None or len(value) < header.size:
        size = 0 if value is None else len(value)
        raise ValueError(f"set chunk truncated: {size} bytes, the envelope alone is {header.size}")
    _, code, index, chunks, raw_length, *listed = header.unpack_from(value)
    if code not in CODECS:
        raise ValueError(f"set chunk codec {code} unknown (0 none, 1 zstd)")
    if not 0 <= index < chunks:
        raise ValueError(f"set chunk {index} out of range: the set has {chunks} chunks")
    table_end = header.size + RANGE_ENTRY.itemsize * (listed[0] if listed else 0)
    if len(value) < table_end:
        raise ValueError(f"set chunk {index} truncated: {len(value)} bytes, its range digests end at {table_end}")
    table = np.frombuffer(value, RANGE_ENTRY, listed[0], header.size) if listed else None
    raw = _payload(value[table_end:], code, index, raw_length)
    try:
        users = BitMap.deserialize(raw)
    except Exception as exc:  # pyroaring raises plain exceptions on corrupt input
        raise ValueError(f"set chunk {index}: not a valid roaring bitmap: {exc}") from exc
    if table is None:
        return DecodedChunk(index, chunks, users, None)
    if not np.array_equal(table["range"], container_keys(raw)):
        raise ValueError(f"set chunk {index}: its range digests do not list exactly the ranges of its users")
    digests = table["digest"].tobytes()  # whole 32-byte digests (an item of the column would drop trailing zeros)
    width = RANGE_ENTRY["digest"].itemsize
    return DecodedChunk(
        index,
        chunks,
        users,
        {key: digests[i * width : (i + 1) * width] for i, key in enumerate(table["range"].tolist())},
    )


def _payload(payload: bytes, code: int, index: int, raw_length: int) -> bytes:
    try:
        raw = payload if code == 0 else bytes(cramjam.zstd.decompress(payload))
    except Exception as exc:  # cramjam raises its own error type on corrupt input
        raise ValueError(f"set chunk {index}: zstd payload corrupt: {exc}") from exc
    if len(raw) != raw_length:
        raise ValueError(f"set chunk {index}: {len(raw)} roaring bytes, the envelope says {raw_length}")
    return raw
