"""Conditional publishing of directive events, safe with several intake instances: each event is produced in a
Kafka transaction and committed only if no other event for its directive was committed before it in the partition
(the log's order decides); otherwise it is aborted, so no reader ever sees it. See the README, "Several instances".
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from services.intake.desk import DirectiveDesk
from services.intake.records import directive_of
from shared.contracts.catalogue import DIRECTIVES
from shared.runtime.kafka import consumer
from shared.runtime.settings import KafkaSettings
from shared.runtime.signing import KeySet

log = structlog.get_logger(service="intake")
TRANSACTION_TIMEOUT_MS = 15_000  # an instance that died mid-transaction holds its partition back this long at most
# How long a publish waits for the transactions before its own to end; longer than a dead instance can hold them.
SETTLE_TIMEOUT_S = 45.0
POLL_MS = 200

Send = Callable[[], Awaitable[Any]]  # produces the record, returns its RecordMetadata once acknowledged


class NotSent(Exception):
    """The broker did not take the record (too large for the topic now, timeout, authorisation); aborted."""


class Unsettled(TimeoutError):
    """The transactions before this one did not end in time; this one was aborted (nothing published)."""


def transactional_id(instance: str) -> str:
    """The transactional id of one intake instance: a restarted instance fences its predecessor of the same name."""
    return f"countermand-intake-{instance}"


class Arbiter:
    """Reads the directive topic (committed records only) into the desk, and runs each publish as a transaction
    that the desk confirms once everything committed before it has been read."""

    def __init__(self, settings: KafkaSettings, instance: str, desk: DirectiveDesk, keys: KeySet | None = None) -> None:
        self._desk = desk
        self._keys = keys  # intake's own: a record not signed by them is not a directive event (the view says why)
        self._consumer: AIOKafkaConsumer = consumer(settings, f"intake-{instance}-arbiter")
        self._partitions = [TopicPartition(DIRECTIVES.name, p) for p in range(DIRECTIVES.partitions)]
        self._reading = asyncio.Lock()
        self._catch_up: asyncio.Task | None = None

    async def start(self, ends: dict[int, int]) -> None:
        """Start reading the topic from its beginning up to `ends` (its last stable offsets now) in the background;
        the desk is ready once every partition was read that far."""
        await self._consumer.start()
        self._consumer.assign(self._partitions)
        await self._consumer.seek_to_beginning(*self._partitions)
        self._catch_up = asyncio.create_task(self._read_up_to(ends))

    async def stop(self) -> None:
        if self._catch_up is not None:
            self._catch_up.cancel()
            await asyncio.gather(self._catch_up, return_exceptions=True)
        await self._consumer.stop()

    async def publish(self, producer: AIOKafkaProducer, send: Send) -> int:
        """Produce one directive event in a transaction; commit it if the desk confirms it once every record before
        it is read, else abort (the desk's refusal, Unsettled, or any failure propagates). Returns its offset."""
        await producer.begin_transaction()
        try:
            try:
                sent = await send()
            except Exception as exc:
                raise NotSent(f"{type(exc).__name__}: {exc}") from exc
            try:
                await asyncio.wait_for(self._read_up_to({sent.partition: sent.offset}), SETTLE_TIMEOUT_S)
            except TimeoutError as exc:
                raise Unsettled(
                    f"the transactions before offset {sent.offset} of partition {sent.partition} did not end "
                    f"within {SETTLE_TIMEOUT_S:.0f} s; nothing was published"
                ) from exc
            self._desk.confirm()
        except BaseException as exc:
            await self._abort(producer, exc)
            raise
        await producer.commit_transaction()
        return int(sent.offset)

    async def _abort(self, producer: AIOKafkaProducer, cause: BaseException) -> None:
        try:
            await producer.abort_transaction()
        except Exception as exc:  # a fenced or failed producer: the transaction ends with it (the watch stops us)
            log.error("could not abort a directive transaction", error=repr(exc), cause=repr(cause))

    async def _read_up_to(self, ends: dict[int, int]) -> None:
        """Read committed records into the desk until each partition's position reaches its end (a transaction still
        open below it holds the position back until it is committed or aborted)."""
        wanted = {TopicPartition(DIRECTIVES.name, p): end for p, end in ends.items()}
        async with self._reading:
            while True:
                behind = [tp for tp, end in wanted.items() if await self._consumer.position(tp) < end]
                for tp in wanted:
                    self._desk.reached(tp.partition, await self._consumer.position(tp))
                if not behind:
                    return
                batches = await self._consumer.getmany(*behind, timeout_ms=POLL_MS)
                for records in batches.values():
                    for record in records:
                        self._desk.record(directive_of(record, self._keys)[0], record.partition, record.offset)
