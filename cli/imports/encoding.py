"""UserUpserted JSON values built on Arrow columns, byte for byte what `UserUpserted.model_dump_json()` gives.

The event id is a SHA-1 name-based id over the record's body (every field after the envelope, user id included), so the
same record imported twice is the same event; `occurred_at` is the import's as-of time (the file's).
"""

from __future__ import annotations

import hashlib
import uuid
from binascii import hexlify
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import AwareDatetime, TypeAdapter

NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "countermand:identity.users.v1:import")
PRODUCER = "registry-import"


@dataclass(frozen=True)
class Encoded:
    """Keys and record bodies of a slice of upserts; `value_of` turns a body into the record's value."""

    keys: pa.Array  # binary: the decimal user id
    bodies: pa.Array  # binary: every field after the envelope, '"type":"UserUpserted",...}'

    def values(self, occurred_at: datetime) -> list[bytes]:
        """Every record's value, in order."""
        return values_of(self.bodies.to_pylist(), occurred_at)


def envelope_head(occurred_at: datetime) -> tuple[bytes, bytes]:
    """The bytes before and after the event id, up to the body (as the contract's serializer writes them)."""
    at = TypeAdapter(AwareDatetime).dump_json(occurred_at).decode()
    return (
        b'{"event_id":"',
        (
            f'","schema_version":1,"occurred_at":{at},"producer":"{PRODUCER}",'
            '"correlation_id":null,"causation_id":null,'
        ).encode(),
    )


def envelope_bytes(occurred_at: datetime) -> int:
    """How many bytes a value has besides its body: the envelope and the event id's 32 hex digits."""
    before, after = envelope_head(occurred_at)
    return len(before) + 32 + len(after)


def encode(upserts: pa.Table) -> Encoded:
    """The records of `upserts` (validated, canonical columns) as Kafka keys and JSON bodies."""
    ids = upserts.column("user_id").combine_chunks().cast(pa.string())
    return Encoded(ids.cast(pa.binary()), _body(upserts, ids).cast(pa.binary()))


def value_of(occurred_at: datetime) -> Callable[[bytes], bytes]:
    """body -> the whole UserUpserted value, its event id `event_id(body)`.

    Per record because SHA-1 has no Arrow kernel; fused with the concatenation so each record is touched once.
    """
    before, after = envelope_head(occurred_at)
    prefix, sha1 = NAMESPACE.bytes, hashlib.sha1

    def value(body: bytes) -> bytes:
        return before + hexlify(sha1(prefix + body).digest()[:16]) + after + body

    return value


def values_of(bodies: Sequence[bytes], occurred_at: datetime) -> list[bytes]:
    """[value_of(occurred_at)(body) for body in bodies], byte for byte (a unit test holds them equal), with
    the least Python per record: SHA-1 has no Arrow kernel; the hex and the concatenation run in C."""
    before, after = envelope_head(occurred_at)
    template = before.replace(b"%", b"%%") + b"%s" + after.replace(b"%", b"%%") + b"%s"
    prefix, sha1 = NAMESPACE.bytes, hashlib.sha1
    ids = map(hexlify, [sha1(prefix + body).digest()[:16] for body in bodies])
    return list(map(template.__mod__, zip(ids, bodies, strict=True)))


def event_id(body: bytes) -> str:
    """The event id of a record: the first 128 bits of SHA-1 over NAMESPACE and the body, in hex (uuid5's
    name-based construction without its version bits, which cost a third of the per-record time)."""
    return hashlib.sha1(NAMESPACE.bytes + body).hexdigest()[:32]


def _body(upserts: pa.Table, ids: pa.Array) -> pa.Array:
    column = upserts.column
    parts = [
        '"type":"UserUpserted","user_id":',
        ids,
        ',"email":',
        _json_text(column("email")),
        ',"nationalities":',
        _json_codes(column("nationalities")),
        ',"residence":',
        _json_text(column("residence")),
        ',"account_type":',
        _json_text(column("account_type")),
        ',"organisation":',
        _json_text(column("organisation")),
        ',"entitlements":',
        _json_codes(column("entitlements")),
        ',"locale":',
        _json_text(column("locale")),
        ',"org_admin":false}',  # organisation administrators are not imported from files yet
    ]
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
