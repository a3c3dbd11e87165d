"""Composition root of intake: broker, directive view, desk and HTTP API, built from settings."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
import uvicorn
from aiokafka import AIOKafkaProducer
from aiokafka.errors import CorruptRecordException, MessageSizeTooLargeError, RecordTooLargeError
from fastapi import FastAPI
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from opentelemetry.sdk.trace import TracerProvider

from services.intake.api import create_api
from services.intake.arbiter import TRANSACTION_TIMEOUT_MS, Arbiter, NotSent, transactional_id
from services.intake.desk import SERVICE, DirectiveDesk, DirectiveEvent
from services.intake.settings import IntakeSettings
from services.intake.view import register_view
from shared.contracts.catalogue import DIRECTIVES
from shared.runtime.auth import AuthSettings, Guard
from shared.runtime.broker import declare_publisher, emit, make_broker
from shared.runtime.http import http_server
from shared.runtime.kafka import end_offsets
from shared.runtime.producer_watch import OnFatal, broker_producer, watch
from shared.runtime.record_signing import publish_signed, record_signer, trusted_keys
from shared.runtime.signing import KeySet, Signer
from shared.runtime.tracing import traced_http, tracer_provider

DESCRIPTION = "Directives proposed, approved, rejected, issued, amended and lifted."
log = structlog.get_logger(service=SERVICE)
# What the broker refuses about one record; the producer is sound otherwise and is replaced to go on.
REFUSED_RECORD = (MessageSizeTooLargeError, RecordTooLargeError, CorruptRecordException)


@dataclass
class IntakeService:
    """Intake, wired: start() connects and starts reading the directive topic; stop() disconnects."""

    settings: IntakeSettings
    broker: KafkaBroker
    http: FastAPI
    desk: DirectiveDesk
    writer: KafkaBroker  # its transactional producer publishes the directive events
    directives: DirectiveWriter
    traces: TracerProvider | None = None  # a SERVER span per request, parent of the directive's trace
    keys: KeySet | None = None  # intake's own public keys: what its view accepts as directive events

    async def start(self) -> None:
        # End offsets first (the last stable ones): the view is ready once it has read at least this far.
        ends = await end_offsets(self.settings.kafka, DIRECTIVES, f"{SERVICE}-{self.settings.instance}-offsets")
        self.desk.expect(ends)
        await self.writer.start()  # registers the transactional id: an older instance of the same name is fenced
        arbiter = Arbiter(self.settings.kafka, self.settings.instance, self.desk, self.keys)
        await arbiter.start(ends)
        self.directives.arbiter = arbiter
        await self.broker.start()

    async def stop(self) -> None:
        await self.broker.stop()
        if self.directives.arbiter is not None:
            await self.directives.arbiter.stop()
            self.directives.arbiter = None
        await self.writer.stop()

    def watch_producers(self, on_fatal: OnFatal) -> None:
        """Call `on_fatal` if the writer's producer (or any that replaces it) fails for good (see producer_watch)."""
        self.directives.watch(on_fatal)

    async def wait_ready(self, poll_s: float = 0.1) -> None:
        """Return once the directive view has caught up."""
        while not self.desk.ready:
            await asyncio.sleep(poll_s)

    def http_server(self) -> uvicorn.Server:
        """A uvicorn server for the HTTP API on the configured address (run it with `await serve()`)."""
        return http_server(traced_http(self.http, self.traces), self.settings.http_host, self.settings.http_port)


def build(settings: IntakeSettings | None = None) -> IntakeService:
    """Build intake from settings; nothing connects until start()."""
    settings = settings or IntakeSettings()
    traces = tracer_provider(settings.telemetry, SERVICE)
    signer = record_signer(settings.signing, SERVICE)
    keys = trusted_keys(settings.signing, SERVICE)
    broker, desk, directives = _wired(settings, signer, traces, keys)
    writer = make_broker(
        settings,
        SERVICE,
        dead_letters=False,
        traces=traces,
        transactional_id=transactional_id(settings.instance),
        transaction_timeout_ms=TRANSACTION_TIMEOUT_MS,
    )
    directives.transactional = declare_publisher(writer, DIRECTIVES, DESCRIPTION)
    directives.writer = writer
    http = create_api(desk, Guard(settings.auth, SERVICE))
    return IntakeService(settings, broker, http, desk, writer, directives, traces, keys)


@dataclass
class DirectiveWriter:
    """Publishes intake's directive events, signed: in a transaction the arbiter confirms once started (several
    instances may publish), plainly through the view's broker before that (a broker in memory, in tests)."""

    plain: Any
    signer: Signer | None
    writer: KafkaBroker | None = None
    transactional: Any = None
    arbiter: Arbiter | None = None
    on_fatal: OnFatal | None = None

    async def __call__(self, event: DirectiveEvent) -> int | None:
        if self.arbiter is None:
            await emit(self.plain, DIRECTIVES, event, signer=self.signer)  # impact acts only on what intake signed
            return None
        producer = broker_producer(self.writer) or await self._reconnect("the writer was not connected")
        try:
            return await self.arbiter.publish(
                producer, lambda: publish_signed(self.transactional, DIRECTIVES, event, self.signer)
            )
        except NotSent as exc:
            if isinstance(exc.__cause__, REFUSED_RECORD):  # not a fenced or failed producer: the watch stops those
                await self._reconnect(str(exc))
            raise

    def watch(self, on_fatal: OnFatal) -> None:
        self.on_fatal = on_fatal
        producer = broker_producer(self.writer)
        if producer is not None:
            watch(producer, f"{SERVICE} writer", on_fatal)

    async def _reconnect(self, why: str) -> AIOKafkaProducer:
        """A new producer under the same transactional id (a new epoch): after a record the broker refused inside a
        transaction, aiokafka's producer does not reset its sequence numbers and every later send would fail with
        OutOfOrderSequenceNumber. Never after ProducerFenced: the new epoch would fence the newer instance."""
        assert self.writer is not None
        log.warning("directive writer reconnecting", reason=why[:500])
        await self.writer.stop()
        await self.writer.start()
        producer = broker_producer(self.writer)
        if producer is None:
            raise RuntimeError("the directive writer did not connect")
        if self.on_fatal is not None:
            watch(producer, f"{SERVICE} writer", self.on_fatal)
        return producer


def _wired(
    settings: IntakeSettings, signer: Signer | None, traces: TracerProvider | None = None, keys: KeySet | None = None
) -> tuple[KafkaBroker, DirectiveDesk, DirectiveWriter]:
    # Intake consumes only its own view of the directive topic (see view.py): no dead-letter topic.
    broker = make_broker(settings, SERVICE, dead_letters=False, traces=traces)
    directives = DirectiveWriter(declare_publisher(broker, DIRECTIVES, DESCRIPTION), signer)
    desk = DirectiveDesk(
        directives,
        approvals_needed=settings.approvals_needed,
        proposal_ttl=timedelta(seconds=settings.proposal_ttl_s),
    )
    register_view(broker, desk, keys)
    return broker, desk, directives


def specification(settings: IntakeSettings | None = None) -> AsyncAPI:
    """The AsyncAPI document of intake (its Kafka side: no HTTP API, so no credentials needed)."""
    return AsyncAPI(
        _wired(settings or IntakeSettings(auth=AuthSettings(mode="off")), None)[0],
        title="Countermand intake",
        version="1",
        description="Turns directives submitted over HTTP or the CLI into directive events.",
    )
