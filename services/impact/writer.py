"""Impact's output in Kafka transactions under one transactional id every instance shares: starting the writer
fences any earlier holder (its open transaction is aborted), so two instances never both publish.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import structlog
from faststream.kafka import KafkaBroker

from shared.contracts.catalogue import IMPACT
from shared.runtime.broker import emit_all
from shared.runtime.producer_watch import OnFatal, broker_producer, producer_epoch, watch
from shared.runtime.signing import Signer

log = structlog.get_logger(service="impact")
# An assessment at the largest registries is one transaction: room for its chunks. A dead active's open
# transaction does not wait this long: the standby's start under the same id aborts it at once.
TRANSACTION_TIMEOUT_MS = 120_000


class NotActive(RuntimeError):
    """Impact publishes only as the active instance (its transactional writer started)."""


@dataclass
class ImpactWriter:
    """Publishes assessments, chunks and deltas, each call one transaction (all of it or nothing is visible)."""

    broker: KafkaBroker  # its producer has the shared transactional id
    publisher: Any
    signer: Signer | None
    _one_at_a_time: asyncio.Lock = field(default_factory=asyncio.Lock)
    _started: bool = False

    async def start(self) -> int:
        """Register the transactional id (fencing the previous holder); returns the epoch it now holds."""
        await self.broker.start()
        self._started = True
        epoch = producer_epoch(self._producer())
        assert epoch is not None, "the impact writer has no transactional id"
        return epoch

    @property
    def started(self) -> bool:
        return self._started

    async def stop(self) -> None:
        if self._started:
            await self.broker.stop()
            self._started = False

    def watch(self, on_fatal: OnFatal) -> None:
        """Call `on_fatal` if the producer fails for good (fenced by a newer active instance, among others)."""
        watch(self._producer(), "impact writer", on_fatal)

    async def publish_all(self, messages: list[Any]) -> None:
        """Publish these messages in order in one transaction; on any failure it is aborted and the error raised."""
        producer = self._producer()
        async with self._one_at_a_time:
            await producer.begin_transaction()
            try:
                await emit_all(self.publisher, IMPACT, messages, signer=self.signer)
            except BaseException as exc:
                await _abort(producer, exc)
                raise
            await producer.commit_transaction()

    async def publish(self, message: Any) -> None:
        await self.publish_all([message])

    def _producer(self) -> Any:
        producer = broker_producer(self.broker) if self._started else None
        if producer is None:
            raise NotActive("impact publishes only as the active instance")
        return producer


async def _abort(producer: Any, cause: BaseException) -> None:
    try:
        await producer.abort_transaction()
    except Exception as exc:  # a fenced or failed producer: the transaction ends with it (the watch stops us)
        log.error("could not abort an impact transaction", error=repr(exc), cause=repr(cause))
