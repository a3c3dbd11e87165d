"""UserUpserted JSON values built on Arrow columns, byte for byte what `UserUpserted.model_dump_json()` gives.

The event id is a UUID 5 over the record's body (every field after the envelope, user id included), so the
same record imported twice is the same event; `occurred_at` is the import's as-of time (the file's).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import AwareDatetime, TypeAdapter

NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "countermand:identity.users.v1:import")
PRODUCER = "registry-import"
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


@dataclass(frozen=True)
class Encoded:
    """Keys and values of a slice of upserts, ready to produce."""

    keys: pa.Array  # binary: the decimal user id
    values: pa.Array  # binary: the UserUpserted JSON


def envelope_head(occurred_at: datetime) -> tuple[bytes, bytes]:
    """The bytes before and after the event id, up to the body (as the contract's serializer writes them)."""
    at = TypeAdapter(AwareDatetime).dump_json(occurred_at).decode()
    return (b'{"event_id":"', (f'","schema_version":1,"occurred_at":{at},"producer":"{PRODUCER}",'
                               '"correlation_id":null,"causation_id":null,').encode())


def encode(upserts: pa.Table, occurred_at: datetime) -> Encoded:
    """The records of `upserts` (validated, canonical columns) as Kafka keys and JSON values."""
    ids = upserts.column("user_id").combine_chunks().cast(pa.string())
    body = _body(upserts, ids)
    before, after = envelope_head(occurred_at)
    values = pc.binary_join_element_wise(before.decode(), event_ids(body), after.decode(), body, "")
    return Encoded(ids.cast(pa.binary()), values.cast(pa.binary()))


def event_ids(bodies: pa.Array) -> pa.Array:
    """uuid5(NAMESPACE, body).hex of each body: SHA-1 per row, the UUID bits and hex digits on the whole column."""
    prefix = NAMESPACE.bytes
    digests = b"".join([hashlib.sha1(prefix + body).digest() for body in bodies.cast(pa.binary()).to_pylist()])
    raw = np.frombuffer(digests, dtype=np.uint8).reshape(-1, 20)[:, :16].copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x50  # version 5
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
    hexed = np.empty((raw.shape[0], 32), dtype=np.uint8)
    hexed[:, 0::2], hexed[:, 1::2] = _HEX[raw >> 4], _HEX[raw & 0x0F]
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(32), len(bodies), [None, pa.py_buffer(hexed)]
                                                ).cast(pa.binary()).cast(pa.string())


def _body(upserts: pa.Table, ids: pa.Array) -> pa.Array:
    column = upserts.column
    parts = ['"type":"UserUpserted","user_id":', ids,
             ',"email":', _json_text(column("email")),
             ',"nationalities":', _json_codes(column("nationalities")),
             ',"residence":', _json_text(column("residence")),
             ',"account_type":', _json_text(column("account_type")),
             ',"organisation":', _json_text(column("organisation")),
             ',"entitlements":', _json_codes(column("entitlements")),
             ',"locale":', _json_text(column("locale")), "}"]
    return pc.binary_join_element_wise(*parts, "")


def _json_text(values: pa.ChunkedArray) -> pa.Array:
    """A JSON string per value ("null" for null); control characters were refused by validation."""
    text = values.combine_chunks()
    if pc.any(pc.match_substring_regex(text, r'["\\]')).as_py():
        text = pc.replace_substring(pc.replace_substring(text, "\\", "\\\\"), '"', '\\"')
    return pc.binary_join_element_wise('"', text, '"', "").fill_null("null")


def _json_codes(lists: pa.ChunkedArray) -> pa.Array:
    """A JSON list of strings per list ("null" for null): codes and model names need no escaping."""
    lists = lists.combine_chunks()
    joined = pc.binary_join_element_wise('["', pc.binary_join(lists, '","'), '"]', "")
    empty = pc.equal(pc.list_value_length(lists), 0)
    return pc.if_else(empty, "[]", joined).fill_null("null")
