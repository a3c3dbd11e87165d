"""Reads the set copies a restrict command references from serving.sets.v1 (assign and seek, no group), each chunk
checked against its signature and the command's digests, and each set's digest combined from its chunks' range
digests, before anything is staged."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from pyroaring import BitMap

from shared.contracts.bitmaps import SetDigest, union
from shared.contracts.catalogue import SETS
from shared.contracts.serving import RestrictCommand
from shared.contracts.set_copies import DecodedChunk, SetReference, decode_chunk, set_key
from shared.runtime.kafka import consumer
from shared.runtime.record_signing import verify_record
from shared.runtime.settings import KafkaSettings
from shared.runtime.signing import KeySet, SignatureRefused

READ_TIMEOUT_S = 30.0
# Fetches are for records known to be there: the broker need not hold one back, and a long-held fetch would delay
# the next read (one fetch in flight per broker). Idle, every partition is paused, so nothing polls.
FETCH_WAIT_MS = 10


class SetCopyRefused(Exception):
    """A referenced set copy cannot be used: missing, unreadable, forged or not what the command's digests say."""


@dataclass
class SetReader:
    """One group-less consumer of the sets topic, seeking to exactly the offsets a command lists."""

    settings: KafkaSettings
    keys: KeySet | None  # whose set copies are accepted (enforcement's); None: signatures not checked
    clock: Callable[[], datetime]
    bury: Callable[[Any, Exception], Awaitable[Any]]  # dead-letters a record that is not a set chunk at all
    poison: list[tuple[Any, Exception]] = field(default_factory=list)
    decoded: dict[str, DecodedChunk] = field(default_factory=dict)  # by value digest, while one command is read
    purpose: str = "agent-sets"
    _consumer: AIOKafkaConsumer | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def start(self) -> None:
        self._consumer = consumer(self.settings, self.purpose, fetch_max_wait_ms=FETCH_WAIT_MS)
        await self._consumer.start()
        partitions = [TopicPartition(SETS.name, p) for p in range(SETS.partitions)]
        self._consumer.assign(partitions)  # once: assigning again would refresh metadata at every read
        self._consumer.pause(*partitions)

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def sets_of(self, command: RestrictCommand) -> tuple[dict[str, BitMap], dict[str, SetDigest]]:
        """Each referenced model's set, read and checked, and its digest where its chunks list their range digests;
        SetCopyRefused naming the first problem."""
        async with self._lock:
            try:
                bounds = await self._bounds(command.sets or [])
                read: dict[str, tuple[BitMap, SetDigest | None]] = {}
                checked: dict[tuple[str, ...], list[DecodedChunk]] = {}  # by the chunks' digests, in order
                for ref in command.sets or ():
                    read[ref.model] = await self._read(command, ref, bounds, checked)
                digests = {model: digest for model, (_, digest) in read.items() if digest is not None}
                return {model: users for model, (users, _) in read.items()}, digests
            except TimeoutError as exc:
                raise SetCopyRefused(f"set copies not read within {READ_TIMEOUT_S:g} s") from exc
            finally:
                self.decoded.clear()
                while self.poison:
                    await self.bury(*self.poison.pop())

    async def _bounds(self, refs: list[SetReference]) -> dict[int, tuple[int, int]]:
        """Per referenced partition, its first and next offsets now (both asked at once)."""
        assert self._consumer is not None, "SetReader.start() first"
        wanted = [TopicPartition(SETS.name, p) for p in sorted({r.partition for r in refs if r.offsets})]
        if not wanted:
            return {}
        unknown = [tp.partition for tp in wanted if tp.partition >= SETS.partitions]
        if unknown:
            raise SetCopyRefused(f"set copy: {SETS.name} has no partition {unknown[0]}")
        first, end = await asyncio.gather(self._consumer.beginning_offsets(wanted), self._consumer.end_offsets(wanted))
        return {tp.partition: (first[tp], end[tp]) for tp in wanted}

    async def _read(
        self,
        command: RestrictCommand,
        ref: SetReference,
        bounds: dict[int, tuple[int, int]],
        checked: dict[tuple[str, ...], list[DecodedChunk]],
    ) -> tuple[BitMap, SetDigest | None]:
        """One model's set. Models sharing one set (their references list the same chunk digests) are fetched once:
        those bytes were checked against the signed command's SHA-256 of each chunk when the first was read; the
        set and its digest are still built, and checked against this model's set digest, on their own."""
        same = tuple(ref.chunk_digests)
        chunks = checked.get(same) if same else None
        if chunks is None:
            records = await self._records(ref, bounds)
            key = set_key(command.directive_id, command.revision, ref.model, ref.version)
            chunks = checked[same] = [self._chunk(record, ref, index, key) for index, record in enumerate(records)]
        return union(chunk.users for chunk in chunks), _digest(ref, chunks)

    def _chunk(self, record: Any, ref: SetReference, index: int, key: bytes) -> DecodedChunk:
        where = f"set copy of {ref.model}, chunk {index} (partition {ref.partition}, offset {record.offset})"
        sha256 = hashlib.sha256(record.value or b"").digest()  # hashed once: for the signature and the digest
        try:
            verify_record(self.keys, record, self.clock(), value_sha256=sha256 if record.value is not None else None)
        except SignatureRefused as exc:
            raise SetCopyRefused(f"{where}: {exc}") from exc
        if sha256.hex() != ref.chunk_digests[index]:
            raise SetCopyRefused(f"{where}: its bytes do not match the command's digest")
        if record.key != key:
            raise SetCopyRefused(f"{where}: key {record.key!r} is not {key!r}")
        chunk = self.decoded.get(ref.chunk_digests[index])  # models sharing one set: the same bytes, decoded once
        if chunk is None:
            try:
                chunk = self.decoded[ref.chunk_digests[index]] = decode_chunk(record.value)
            except ValueError as exc:
                self.poison.append((record, exc))  # signed, and still not a set chunk: dead-lettered by the caller
                raise SetCopyRefused(f"{where}: {exc}") from exc
        if (chunk.index, chunk.chunks) != (index, len(ref.offsets)):
            raise SetCopyRefused(
                f"{where}: it says chunk {chunk.index} of {chunk.chunks}, the command {index} of {len(ref.offsets)}"
            )
        return chunk

    async def _records(self, ref: SetReference, bounds: dict[int, tuple[int, int]]) -> list[Any]:
        """The records at the referenced offsets, in order; SetCopyRefused when one is not on the topic."""
        if not ref.offsets:
            return []
        assert self._consumer is not None, "SetReader.start() first"
        tp = TopicPartition(SETS.name, ref.partition)
        first, end = bounds[ref.partition]
        absent = [o for o in ref.offsets if not first <= o < end]
        if absent:
            raise SetCopyRefused(
                f"set copy of {ref.model}: offset {absent[0]} is not on {SETS.name} partition {ref.partition} "
                f"(it holds {first}..{end - 1})"
            )
        found: dict[int, Any] = {}
        wanted = set(ref.offsets)
        self._consumer.seek(tp, ref.offsets[0])
        self._consumer.resume(tp)
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                while len(found) < len(wanted):
                    batch = await self._consumer.getmany(tp, timeout_ms=500)
                    found.update({r.offset: r for r in batch.get(tp, []) if r.offset in wanted})
                    missing = [o for o in ref.offsets if o not in found]
                    position = await self._consumer.position(tp)
                    if missing and missing[0] < position:  # passed without a record: a marker or an aborted write
                        raise SetCopyRefused(f"set copy of {ref.model}: offset {missing[0]} holds no readable record")
                    if missing and missing[0] > position:
                        self._consumer.seek(tp, missing[0])  # skip other sets' chunks between ours
        finally:
            self._consumer.pause(tp)
        return [found[o] for o in ref.offsets]


def _digest(ref: SetReference, chunks: list[DecodedChunk]) -> SetDigest | None:
    """The set's digest combined from its chunks' range digests (each covered by the chunk's SHA-256 in the signed
    command, so the set is not hashed again here), refused unless it is the command's; None when a chunk lists
    none (layout 1): the set is then hashed when held. What is held is acknowledged with it."""
    if any(chunk.ranges is None for chunk in chunks):
        return None
    ranges: dict[int, bytes] = {}
    for chunk in chunks:
        repeated = ranges.keys() & (chunk.ranges or {}).keys()
        if repeated:
            raise SetCopyRefused(
                f"set copy of {ref.model}, chunk {chunk.index}: range {min(repeated)} is in an earlier chunk too"
            )
        ranges.update(chunk.ranges or {})
    digest = SetDigest.from_ranges(ranges)
    if digest.hexdigest() != ref.digest:
        raise SetCopyRefused(
            f"set copy of {ref.model}: its chunks' range digests combine to {digest.hexdigest()}, "
            f"the command says {ref.digest}"
        )
    return digest
