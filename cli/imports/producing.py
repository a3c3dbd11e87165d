"""Produce records to identity.users.v1 in whole batches per partition (aiokafka's create_batch/send_batch):
the least work per record the client allows. Partitions are the default partitioner's, so every key lands
where any other producer of the topic puts it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import numpy as np
import pyarrow as pa
from aiokafka import AIOKafkaProducer

from cli.imports.partitions import partitions_for
from shared.contracts.catalogue import USERS, Topic
from shared.runtime.kafka import producing, records_to_end
from shared.runtime.settings import KafkaSettings

BATCH_BYTES = 1024 * 1024  # per partition and request; below the topic's max.message.bytes
PURPOSE = "registry-import"


@asynccontextmanager
async def users_producer(settings: KafkaSettings) -> AsyncIterator[AIOKafkaProducer]:
    """A started producer (the project's delivery rules: idempotent, acks=all) with large batches."""
    async with producing(
        settings, PURPOSE, max_batch_size=min(BATCH_BYTES, settings.max_request_bytes), linger_ms=5
    ) as producer:
        yield producer


async def send(
    producer: AIOKafkaProducer,
    keys: pa.Array,
    bodies: pa.Array | None,
    value_of: Callable[[bytes], bytes] | None = None,
    topic: Topic = USERS,
) -> list[asyncio.Future]:
    """Queue one record per key, its value `value_of(body)` (a tombstone where `bodies` is None); returns the
    batches' delivery futures."""
    partition = partitions_for(keys, topic.partitions)
    order = np.argsort(partition, kind="stable")  # file order within a partition
    bounds = np.searchsorted(partition[order], np.arange(topic.partitions + 1))
    jobs = []
    for number in range(topic.partitions):
        rows = pa.array(order[bounds[number] : bounds[number + 1]])
        if len(rows):
            part_bodies = [None] * len(rows) if bodies is None else bodies.take(rows).to_pylist()
            jobs.append(
                _send_partition(
                    producer,
                    topic.name,
                    number,
                    keys.take(rows).to_pylist(),
                    part_bodies,
                    _tombstone if bodies is None else value_of,
                )
            )
    return [future for futures in await asyncio.gather(*jobs) for future in futures]


async def _send_partition(
    producer: AIOKafkaProducer,
    topic: str,
    partition: int,
    keys: Sequence[bytes],
    bodies: Sequence[bytes | None],
    value_of: Callable,
) -> list[asyncio.Future]:
    futures = []
    batch = producer.create_batch()
    for key, body in zip(keys, bodies, strict=True):
        value = value_of(body)
        if batch.append(timestamp=None, key=key, value=value) is None:
            futures.append(await producer.send_batch(batch, topic, partition=partition))
            batch = producer.create_batch()
            if batch.append(timestamp=None, key=key, value=value) is None:
                raise ValueError(f"user {key.decode()}: the record does not fit in a batch of {BATCH_BYTES} bytes")
    futures.append(await producer.send_batch(batch, topic, partition=partition))
    return futures


def _tombstone(_: None) -> None:
    return None


async def current_ids(settings: KafkaSettings, topic: Topic = USERS) -> np.ndarray:
    """Ids of the users on the topic now (the last record of a key not a tombstone), sorted."""
    alive: dict[bytes, bool] = {}
    async for record in records_to_end(settings, topic, f"{PURPOSE}-snapshot"):
        alive[record.key] = record.value is not None
    ids = [int(key) for key, present in alive.items() if present and key is not None and key.isdigit()]
    return np.array(sorted(ids), dtype=np.int64)
