"""Produce a population (or one change) to identity.users.v1 on Kafka."""

from __future__ import annotations

import asyncio
import importlib.util
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime

from aiokafka import AIOKafkaProducer

from devtools.registry.population import PRODUCER, Population, encoded
from shared.contracts.catalogue import USERS
from shared.contracts.envelope import utc_now
from shared.contracts.users import MAX_USER_ID, UserUpserted, user_key
from shared.runtime.kafka import producing
from shared.runtime.settings import KafkaSettings

BATCH = 10_000  # records in flight before awaiting their delivery
Progress = Callable[[int, int], None]  # (users produced so far, total)


def _producer(bootstrap: str, purpose: str) -> AbstractAsyncContextManager[AIOKafkaProducer]:
    """A started producer from the shared factory, tuned for bulk loading (larger batches, a longer linger)."""
    # lz4 only when its package is present: the registry adds no dependency for it.
    compression = "lz4" if importlib.util.find_spec("lz4") is not None else None
    return producing(
        KafkaSettings(bootstrap=bootstrap),
        purpose,
        linger_ms=20,
        max_batch_size=512 * 1024,
        max_request_size=1024 * 1024,
        compression_type=compression,
    )


async def load(
    bootstrap: str,
    pop: Population,
    progress: Progress | None = None,
    *,
    batch: int = BATCH,
    occurred_at: datetime | None = None,
) -> int:
    """Produce every user of `pop` as a UserUpserted; returns how many were acknowledged by the broker."""
    at = occurred_at or utc_now()
    prefix = f"registry-{uuid.uuid4().hex[:12]}-"  # event ids unique per load, cheap per record
    async with _producer(bootstrap, "registry-load") as producer:
        done = 0
        for start in range(0, len(pop), batch):
            stop = min(start + batch, len(pop))
            payloads = encoded(pop, start, stop, occurred_at=at, event_prefix=prefix)
            UserUpserted.model_validate_json(payloads[0][1])  # a sample per batch: fail fast on drift
            pending = [await producer.send(USERS.name, value, key=key) for key, value in payloads]
            await asyncio.gather(*pending)
            done = stop
            if progress:
                progress(done, len(pop))
        return done


async def upsert(bootstrap: str, record: UserUpserted) -> None:
    """Produce one user's full current record."""
    await _send_one(bootstrap, user_key(record.user_id), record.model_dump_json().encode())


async def delete(bootstrap: str, user_id: int) -> None:
    """Delete a user: a tombstone (null value) on the user's key."""
    if not 0 <= user_id <= MAX_USER_ID:
        raise ValueError(f"user_id: must lie in 0..{MAX_USER_ID}, got {user_id}")
    await _send_one(bootstrap, user_key(user_id), None)


async def _send_one(bootstrap: str, key: bytes, value: bytes | None) -> None:
    async with _producer(bootstrap, PRODUCER) as producer:
        await producer.send_and_wait(USERS.name, value, key=key)
