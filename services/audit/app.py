"""Composition root of the audit service: one batch subscriber over every topic, the ledger, checkpoints, and
the HTTP API (health, metrics, explain for auditors)."""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
import uvicorn
from fastapi import FastAPI
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.specification import AsyncAPI

from services.audit.api import create_api
from services.audit.batch_fence import records_of
from services.audit.checkpoints import CheckpointPolicy
from services.audit.forgery import Signatures
from services.audit.ledger import Ledger
from services.audit.record import Record
from services.audit.settings import AuditSettings
from services.audit.signing_key import checkpoint_signer
from services.audit.treehead import sign_head
from shared.contracts.audit import AuditCheckpoint
from shared.contracts.catalogue import AUDIT, BY_NAME, DATA_TOPICS, DEAD_LETTER_TOPICS
from shared.contracts.envelope import envelope, utc_now
from shared.runtime.auth import AuthSettings, Guard
from shared.runtime.broker import consumer_options, declare_publisher, emit, make_broker
from shared.runtime.deadletters import dead_letter_middleware
from shared.runtime.health import ConsumerWatch, LagWatch
from shared.runtime.http import http_server
from shared.runtime.record_headers import raw_values
from shared.runtime.service import cancel_tasks
from shared.runtime.signing import Signer

SERVICE = "audit"
LEDGER_ID = "main"
RECORDED_TOPICS = tuple(t.name for t in DATA_TOPICS + DEAD_LETTER_TOPICS if t is not AUDIT)

log = structlog.get_logger(service=SERVICE)


def record_of(raw: Any) -> Record:
    """The audit's copy of an aiokafka ConsumerRecord."""
    headers = tuple((name, value) for name, value in (raw.headers or ()))
    return Record(raw.topic, raw.partition, raw.offset, raw.key, raw.value, headers, raw.timestamp)


class Recorder:
    """Appends every batch to the ledger and publishes signed checkpoints at the policy's cadence."""

    def __init__(self, settings: AuditSettings, ledger: Ledger, publisher: Any, signer: Signer | None) -> None:
        self.settings = settings
        self.ledger = ledger
        self.signer = signer
        self.policy = CheckpointPolicy(settings.checkpoint_every, settings.checkpoint_interval_s)
        self._checkpoints = publisher
        self._head = (0, "", 0, b"")  # (seq, hash, tree size, root) of the newest committed entry
        self._reported = (0, time.monotonic())
        self._latest_event_id: str | None = None
        self._publishing = asyncio.Lock()

    def open(self) -> None:
        """Take the ledger's head (the frontier was reopened with the ledger: no pass over the entries)."""
        self._head = (*self.ledger.head(), *self.ledger.tree_head())
        self._reported = (self._head[0], time.monotonic())

    async def on_records(self, message: KafkaMessage) -> None:
        """Append a batch to the ledger; the offsets are committed after the transaction."""
        records = [record_of(raw) for raw in records_of(message)]
        entries = await asyncio.to_thread(self.ledger.append, records)
        if entries:
            self._head = (entries[-1].seq, entries[-1].hash, *self.ledger.tree_head())
            self._latest_event_id = entries[-1].envelope.event_id or self._latest_event_id
            log.debug("ledger appended", entries=len(entries), head_seq=entries[-1].seq)
        await self.checkpoint_if_due()

    async def checkpoint_if_due(self) -> None:
        """Publish a checkpoint when the policy says so; a failure is retried at the next batch or tick."""
        async with self._publishing:
            entries, head, size, root = self._head  # committed; never read the store while a batch is being written
            if not self.policy.due(entries, self._reported[0], time.monotonic(), self._reported[1]):
                return
            signed = sign_head(self.signer, size, root, utc_now()) if self.signer else None
            checkpoint = AuditCheckpoint(
                **envelope(SERVICE, causation_id=self._latest_event_id),
                ledger=LEDGER_ID,
                entries=entries,
                head_hash=head,
                tree_head=signed.contract() if signed else None,
            )
            try:
                await emit(self._checkpoints, AUDIT, checkpoint)
            except Exception as exc:  # the ledger is durable already; the next checkpoint covers it
                log.warning("checkpoint not published", error=repr(exc))
                return
            self._reported = (entries, time.monotonic())
            log.info("checkpoint published", entries=entries, head_hash=head, root=root.hex(), signed=bool(signed))

    async def tick(self) -> None:
        while True:
            await asyncio.sleep(min(self.settings.checkpoint_interval_s, 1.0))
            await self.checkpoint_if_due()


@dataclass
class AuditService:
    """The audit, wired: start() opens the recorder and connects; stop() disconnects and closes the ledger."""

    settings: AuditSettings
    broker: KafkaBroker
    http: FastAPI
    ledger: Ledger
    recorder: Recorder
    watch: ConsumerWatch
    tasks: tuple[asyncio.Task, ...] = ()

    @property
    def started(self) -> bool:
        return bool(self.tasks)

    async def start(self) -> None:
        if self.recorder.signer is None:
            self.recorder.signer = checkpoint_signer(self.settings)  # refuses without a key unless unsigned dev
        self.recorder.open()
        await self.broker.start()
        recorded = tuple(BY_NAME[name] for name in RECORDED_TOPICS)
        lag = LagWatch(self.settings.kafka, self.settings.group, recorded, self.watch)
        self.tasks = (asyncio.create_task(lag.run()), asyncio.create_task(self.recorder.tick()))

    def http_server(self) -> uvicorn.Server:
        """The HTTP API's server (the run loop serves it)."""
        return http_server(self.http, self.settings.http_host, self.settings.http_port)

    async def stop(self) -> None:
        await cancel_tasks(*self.tasks)
        await self.broker.stop()
        self.ledger.close()


def build(
    settings: AuditSettings | None = None, ledger: Ledger | None = None, signer: Signer | None = None
) -> AuditService:
    """Build the audit service from settings, its ledger opened here (or the one given); the signing key is
    loaded at start unless given. Nothing connects until start()."""
    settings = settings or AuditSettings()
    ledger = ledger if ledger is not None else Ledger(settings.ledger_path)
    broker, recorder, watch = _wired(settings, ledger, signer)
    service: AuditService | None = None

    def ready() -> bool:
        return service is not None and service.started

    http = create_api(
        SERVICE,
        lambda: Ledger(ledger.path, read_only=True),
        Signatures.from_files(settings.record_keys),
        Guard(settings.auth or AuthSettings(), SERVICE),
        ready,
        watch,
    )
    service = AuditService(settings, broker, http, ledger, recorder, watch)
    return service


def _wired(
    settings: AuditSettings, ledger: Ledger, signer: Signer | None
) -> tuple[KafkaBroker, Recorder, ConsumerWatch]:
    watch = ConsumerWatch(SERVICE)
    broker = make_broker(settings, SERVICE, dead_letters=False)
    # A batch the store cannot take is dead-lettered record by record, then recorded from dlq.audit.v1.
    broker.add_middleware(dead_letter_middleware(SERVICE, batches=True, watch=watch))
    publisher = declare_publisher(broker, AUDIT, "Length and head hash of the ledger.")
    recorder = Recorder(settings, ledger, publisher, signer)
    subscriber = broker.subscriber(
        *RECORDED_TOPICS,
        batch=True,
        max_records=settings.batch_max_records,
        batch_timeout_ms=settings.batch_timeout_ms,
        decoder=raw_values,
        title="audit:record",
        description="Every record of every topic, appended to the ledger.",
        **consumer_options(settings.group),
    )
    subscriber(recorder.on_records)
    return broker, recorder, watch


def specification(settings: AuditSettings | None = None) -> AsyncAPI:
    """The AsyncAPI document of the audit service (built over a throwaway ledger: it writes nothing)."""
    settings = settings or AuditSettings()
    with tempfile.TemporaryDirectory() as scratch:
        ledger = Ledger(Path(scratch) / "ledger.sqlite")
        broker = _wired(settings, ledger, None)[0]
        ledger.close()
    return AsyncAPI(broker, title="Countermand audit", version="1.0.0")
