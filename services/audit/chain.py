"""The hash chain of the ledger: linking entries and verifying the whole chain. Pure, no I/O.

Canonical encoding of a record (the bytes hashed after the previous hash):

    topic      field(utf-8 bytes of the topic name)
    partition  8-byte big-endian signed integer
    offset     8-byte big-endian signed integer
    key        field(key bytes), or NULL for no key
    value      field(value bytes), or NULL for a tombstone
    headers    4-byte big-endian header count, then per header in received order:
               field(utf-8 bytes of the name), field(value bytes) or NULL

    field(b) = 4-byte big-endian unsigned length of b, then b
    NULL     = the 4 bytes FF FF FF FF (no length can be that large), distinguishing None from b""

hash = SHA-256(prev_hash as its 32 raw bytes || canonical encoding), written as 64 lowercase hex
digits. The first entry's prev_hash is GENESIS (64 zeros). The Kafka timestamp and the derived
envelope fields are not hashed: the envelope fields are re-derived from the value on verification.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from services.audit.record import Envelope, Record, envelope_of

GENESIS = "0" * 64
_NULL = b"\xff\xff\xff\xff"


@dataclass(frozen=True)
class Entry:
    """A record linked into the chain at position seq."""

    seq: int
    record: Record
    envelope: Envelope
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class Verdict:
    """Outcome of walking the chain: intact, or the first broken seq and why."""

    checked: int
    head_hash: str
    broken_seq: int | None = None
    reason: str | None = None

    @property
    def intact(self) -> bool:
        return self.broken_seq is None


def _field(data: bytes | None) -> bytes:
    return _NULL if data is None else struct.pack(">I", len(data)) + data


def canonical(record: Record) -> bytes:
    """The canonical encoding of a record (see the module docstring)."""
    parts = [
        _field(record.topic.encode()),
        struct.pack(">qq", record.partition, record.offset),
        _field(record.key),
        _field(record.value),
        struct.pack(">I", len(record.headers)),
    ]
    for name, value in record.headers:
        parts += [_field(name.encode()), _field(value)]
    return b"".join(parts)


def entry_hash(prev_hash: str, record: Record) -> str:
    """The hash of a record linked after an entry whose hash is prev_hash."""
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical(record)).hexdigest()


def link(records: Iterable[Record], prev_hash: str, next_seq: int) -> list[Entry]:
    """Chain records after the current head (prev_hash, next free seq)."""
    entries = []
    for seq, record in enumerate(records, start=next_seq):
        digest = entry_hash(prev_hash, record)
        entries.append(Entry(seq, record, envelope_of(record.value), prev_hash, digest))
        prev_hash = digest
    return entries


def verify(entries: Iterable[Entry], checkpoint: tuple[int, str] | None = None) -> Verdict:
    """Walk the chain in seq order; report the first entry that does not follow from its predecessor.

    A checkpoint (entries, head_hash) published earlier anchors the chain from outside: a ledger cut
    short or rewritten wholesale since then no longer holds that hash at that seq.
    """
    checked, head, anchored = 0, GENESIS, checkpoint is None
    for entry in entries:
        reason = _fault(entry, head)
        if reason:
            return Verdict(checked, head, entry.seq, reason)
        checked, head = checked + 1, entry.hash
        if checkpoint and entry.seq == checkpoint[0]:
            if entry.hash != checkpoint[1]:
                return Verdict(checked, head, entry.seq, "hash differs from the checkpoint's head hash")
            anchored = True
    if not anchored:
        return Verdict(checked, head, checkpoint[0], "entry of the checkpoint is missing (ledger cut short)")
    return Verdict(checked, head)


def _fault(entry: Entry, expected_prev: str) -> str | None:
    if entry.prev_hash != expected_prev:
        return "prev_hash does not match the previous entry's hash (entry deleted, inserted or reordered)"
    if entry_hash(entry.prev_hash, entry.record) != entry.hash:
        return "hash does not match the recorded content (entry modified)"
    if envelope_of(entry.record.value) != entry.envelope:
        return "event_id, type or correlation_id do not match the recorded value"
    return None


def fresh(records: Iterable[Record], seen: set[tuple[str, int, int]]) -> Iterator[Record]:
    """Records whose (topic, partition, offset) is not yet in the ledger nor earlier in the batch."""
    for record in records:
        position = (record.topic, record.partition, record.offset)
        if position not in seen:
            seen.add(position)
            yield record
