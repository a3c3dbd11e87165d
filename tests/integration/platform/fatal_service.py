"""A service for tests/integration/platform/test_fatal_producer.py: once ready, its producer's next request fails
with OutOfOrderSequenceNumber (as aiokafka's sender sees it after a lost sequence), then it publishes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiokafka.errors import OutOfOrderSequenceNumber
from faststream.kafka import KafkaBroker

from shared.contracts.catalogue import dead_letter_topic
from shared.runtime.broker import make_broker
from shared.runtime.producer_watch import broker_producer
from shared.runtime.service import run
from shared.runtime.settings import ServiceSettings


@dataclass
class FailingService:
    broker: KafkaBroker
    tasks: list[asyncio.Task] = field(default_factory=list)

    async def start(self) -> None:
        await self.broker.start()
        self.tasks.append(asyncio.create_task(self._fail_then_publish()))

    async def stop(self) -> None:
        await self.broker.stop()

    async def _fail_then_publish(self) -> None:
        await asyncio.sleep(0.5)  # after "service ready"
        sender = broker_producer(self.broker)._sender

        async def lost_sequence(*args: object, **kwargs: object) -> None:
            raise OutOfOrderSequenceNumber("injected by the test")

        sender._send_produce_req = lost_sequence
        await self.broker.publish(b"x", dead_letter_topic("intake").name)  # never written: the request fails


def build(settings: ServiceSettings) -> FailingService:
    return FailingService(make_broker(settings, "fatal-test", dead_letters=False))


if __name__ == "__main__":
    run("fatal-test", build, ServiceSettings)
