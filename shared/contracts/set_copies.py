"""One copy of an affected set per (directive, revision, model, version) on `serving.sets.v1`, as binary records:
a small fixed envelope, then the chunk's portable roaring bytes, zstd-compressed when that pays (shared/README.md).
"""

from __future__ import annotations

import hashlib
import struct
from typing import Literal

import cramjam
from pydantic import Field
from pyroaring import BitMap

from shared.contracts.bitmaps import chunk_bitmap
from shared.contracts.directives import DirectiveId, ModelName
from shared.contracts.envelope import Message

MAGIC = b"CMS1"  # "Countermand set, layout 1"
HEADER = struct.Struct(">4sBIII")  # magic, codec, chunk index, chunks in the set, roaring bytes before compression
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
    sits on one partition). Value: a 17-byte big-endian envelope, then the payload: magic `CMS1` (4 bytes),
    codec (1 byte: 0 none, 1 zstd), chunk index (uint32), chunks in the set (uint32), length of the roaring bytes
    before compression (uint32); the payload is the chunk's users as a portable roaring bitmap, compressed by
    the codec. Headers: `content-type` and the record signature (over topic, key and the value's SHA-256, so it
    covers the envelope). This model documents those fields; it is never serialised as JSON.
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
        ..., description="Set digest of the model's set once the chunks are unioned.", examples=["9f86d081..."]
    )


def set_key(directive_id: str, revision: int, model: str, version: int) -> bytes:
    """The Kafka key every chunk of one set copy carries."""
    return f"{directive_id}:{revision}:{model}:{version}".encode()


def value_digest(value: bytes) -> str:
    return hashlib.sha256(value).hexdigest()


def encode_chunk(users: BitMap, index: int, chunks: int, codec: Codec | None = None) -> bytes:
    """One chunk's record value; codec None: zstd when it saves ZSTD_MIN_SAVING, else none (decided per chunk)."""
    return pack_chunk(_roaring(users), len(users), index, chunks, codec)


def pack_chunk(raw: bytes, ids: int, index: int, chunks: int, codec: Codec | None = None) -> bytes:
    """A chunk's record value from its portable roaring bytes holding `ids` ids (see encode_chunk)."""
    payload, chosen = raw, "none"
    if codec == "zstd" or (codec is None and ids and ZSTD_BAND[0] <= len(raw) / ids <= ZSTD_BAND[1]):
        packed = bytes(cramjam.zstd.compress(raw, level=ZSTD_LEVEL))
        if codec == "zstd" or len(packed) <= len(raw) * (1 - ZSTD_MIN_SAVING):
            payload, chosen = packed, "zstd"
    return HEADER.pack(MAGIC, CODEC_IDS[chosen], index, chunks, len(raw)) + payload


def encode_set(users: BitMap, ids_per_chunk: int, max_bytes: int) -> list[bytes]:
    """One model's set as chunk record values, each at most max_bytes (split by id range; sparse sets halved)."""
    parts = [piece for part in chunk_bitmap(users, ids_per_chunk) for piece in _fit(part, max_bytes - HEADER.size)]
    if len(parts) > MAX_CHUNKS:
        raise ValueError(f"set of {len(users)} users needs {len(parts)} chunks, more than {MAX_CHUNKS}")
    return [pack_chunk(raw, ids, index, len(parts)) for index, (raw, ids) in enumerate(parts)]


def _roaring(users: BitMap) -> bytes:
    bitmap = BitMap(users)
    bitmap.run_optimize()
    return bitmap.serialize()


def _fit(part: BitMap, max_bytes: int) -> list[tuple[bytes, int]]:
    raw = _roaring(part)
    if len(raw) <= max_bytes or len(part) <= 1:
        return [(raw, len(part))]
    first, second = chunk_bitmap(part, (len(part) + 1) // 2)
    return _fit(first, max_bytes) + _fit(second, max_bytes)


def decode_chunk(value: bytes | None) -> tuple[int, int, BitMap]:
    """(index, chunks, users) of a chunk record value; ValueError naming what is wrong (truncated, not a set
    chunk, unknown codec, corrupt payload)."""
    if value is None or len(value) < HEADER.size:
        raise ValueError(f"set chunk truncated: {0 if value is None else len(value)} bytes, the envelope alone is 17")
    magic, code, index, chunks, raw_length = HEADER.unpack_from(value)
    if magic != MAGIC:
        raise ValueError(f"not a set chunk: magic {magic!r}, expected {MAGIC!r}")
    if code not in CODECS:
        raise ValueError(f"set chunk codec {code} unknown (0 none, 1 zstd)")
    if not 0 <= index < chunks:
        raise ValueError(f"set chunk {index} out of range: the set has {chunks} chunks")
    payload = value[HEADER.size :]
    try:
        raw = payload if code == 0 else bytes(cramjam.zstd.decompress(payload))
    except Exception as exc:  # cramjam raises its own error type on corrupt input
        raise ValueError(f"set chunk {index}: zstd payload corrupt: {exc}") from exc
    if len(raw) != raw_length:
        raise ValueError(f"set chunk {index}: {len(raw)} roaring bytes, the envelope says {raw_length}")
    try:
        return index, chunks, BitMap.deserialize(raw)
    except Exception as exc:  # pyroaring raises plain exceptions on corrupt input
        raise ValueError(f"set chunk {index}: not a valid roaring bitmap: {exc}") from exc
