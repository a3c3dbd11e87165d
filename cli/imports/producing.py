"""Produce records to identity.users.v1 in whole batches per partition (aiokafka's create_batch/send_batch),
each cut in advance and filled in one call (see aiokafka_fence). Partitions are the default partitioner's,
so every key lands where any other producer of the topic puts it."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from aiokafka import AIOKafkaProducer

from cli.imports.aiokafka_fence import BATCH_HEADER_BYTES, RECORD_OVERHEAD_BYTES, fill
from cli.imports.encoding import envelope_bytes, values_of
from cli.imports.partitions import partitions_for
from shared.contracts.catalogue import USERS, Topic
from shared.runtime.kafka import producing, records_to_end
from shared.runtime.settings import KafkaSettings

BATCH_BYTES = 1024 * 1024  # per partition and request; below the topic's max.message.bytes
PURPOSE = "registry-import"


@dataclass(frozen=True)
class PartitionRecords:
    """One partition's records of a slice, in file order, cut into batches that each fit one record batch."""

    partition: int
    keys: list[bytes]
    values: list[bytes | None]  # None: a tombstone
    bounds: list[int]  # batch i holds records bounds[i]..bounds[i+1]-1


def batch_bytes(settings: KafkaSettings) -> int:
    """The size of the producer's record batches (users_producer's max_batch_size)."""
    return min(BATCH_BYTES, settings.max_request_bytes)


@asynccontextmanager
async def users_producer(settings: KafkaSettings) -> AsyncIterator[AIOKafkaProducer]:
    """A started producer (the project's delivery rules: idempotent, acks=all) with large batches."""
    async with producing(settings, PURPOSE, max_batch_size=batch_bytes(settings), linger_ms=5) as producer:
        yield producer


def by_partition(
    keys: pa.Array, bodies: pa.Array | None, occurred_at: datetime, partitions: int, batch_size: int
) -> list[PartitionRecords]:
    """The records (UserUpserted values of `bodies`, tombstones when None) grouped by the default partitioner's
    partition, file order kept within each, and cut into batches of at most batch_size bytes."""
    partition = partitions_for(keys, partitions)
    order = np.argsort(partition, kind="stable")
    ends = np.searchsorted(partition[order], np.arange(partitions + 1))
    key_list = keys.take(pa.array(order)).to_pylist()
    sizes = pc.binary_length(keys).to_numpy()[order]
    if bodies is None:
        value_list: list[bytes | None] = [None] * len(key_list)
    else:
        value_list = values_of(bodies.take(pa.array(order)).to_pylist(), occurred_at)
        sizes += pc.binary_length(bodies).to_numpy()[order] + envelope_bytes(occurred_at)
    cumulative = np.cumsum(sizes + RECORD_OVERHEAD_BYTES)
    grouped = []
    for number in range(partitions):
        start, stop = int(ends[number]), int(ends[number + 1])
        if stop > start:
            bounds = _batch_bounds(cumulative, start, stop, batch_size - BATCH_HEADER_BYTES, key_list)
            grouped.append(
                PartitionRecords(number, key_list[start:stop], value_list[start:stop], [b - start for b in bounds])
            )
    return grouped


def _batch_bounds(cumulative: np.ndarray, start: int, stop: int, room: int, keys: list[bytes]) -> list[int]:
    bounds = [start]
    while bounds[-1] < stop:
        first = bounds[-1]
        before = cumulative[first - 1] if first else 0
        end = min(int(np.searchsorted(cumulative, before + room, side="right")), stop)
        if end == first:
            raise ValueError(f"user {keys[first].decode()}: the record does not fit in a batch of {room} bytes")
        bounds.append(end)
    return bounds


async def send(
    producer: AIOKafkaProducer, records: list[PartitionRecords], topic: Topic = USERS
) -> list[asyncio.Future]:
    """Queue every partition's batches; returns the batches' delivery futures."""
    jobs = [_send_partition(producer, topic.name, part) for part in records]
    return [future for futures in await asyncio.gather(*jobs) for future in futures]


async def _send_partition(producer: AIOKafkaProducer, topic: str, part: PartitionRecords) -> list[asyncio.Future]:
    futures = []
    for start, stop in itertools.pairwise(part.bounds):
        batch = producer.create_batch()
        fill(batch, part.keys[start:stop], part.values[start:stop], time.time_ns() // 1_000_000)
        futures.append(await producer.send_batch(batch, topic, partition=part.partition))
    return futures


async def current_ids(settings: KafkaSettings, topic: Topic = USERS) -> np.ndarray:
    """Ids of the users on the topic now (the last record of a key not a tombstone), sorted."""
    alive: dict[bytes, bool] = {}
    async for record in records_to_end(settings, topic, f"{PURPOSE}-snapshot"):
        alive[record.key] = record.value is not None
    ids = [int(key) for key, present in alive.items() if present and key is not None and key.isdigit()]
    return np.array(sorted(ids), dtype=np.int64)
