"""Composition root of the audit service: one batch subscriber over every topic, the ledger, checkpoints."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import structlog
import uvicorn
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.specification import AsyncAPI

from services.audit.batch_fence import records_of
from services.audit.checkpoints import CheckpointPolicy
from services.audit.ledger import Ledger
from services.audit.record import Record
from services.audit.settings import AuditSettings
from services.audit.signing_key import checkpoint_signer
from services.audit.treehead import sign_head
from shared.contracts.audit import AuditCheckpoint
from shared.contracts.catalogue import AUDIT, BY_NAME, DATA_TOPICS, DEAD_LETTER_TOPICS
from shared.contracts.envelope import envelope, utc_now
from shared.runtime.broker import consumer_options, declare_publisher, emit, make_broker
from shared.runtime.deadletters import dead_letter_middleware
from shared.runtime.health import ConsumerWatch, LagWatch
from shared.runtime.http import health_app, http_server
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


class AuditService:
    """The running audit: broker, ledger and checkpoint cadence."""

    def __init__(self, settings: AuditSettings, ledger: Ledger, signer: Signer | None = None) -> None:
        self.settings = settings
        self.signer = signer
        self.watch = ConsumerWatch(SERVICE)
        self.broker: KafkaBroker = make_broker(settings, SERVICE, dead_letters=False)
        # A batch the store cannot take is dead-lettered record by record, then recorded from dlq.audit.v1.
        self.broker.add_middleware(dead_letter_middleware(SERVICE, batches=True, watch=self.watch))
        self.http = health_app(SERVICE, lambda: self._ticker is not None, self.watch)
        self._lag: asyncio.Task | None = None
        self.ledger = ledger
        self.policy = CheckpointPolicy(settings.checkpoint_every, settings.checkpoint_interval_s)
        self._checkpoints = declare_publisher(self.broker, AUDIT, "Length and head hash of the ledger.")
        self._head = (0, "", 0, b"")  # (seq, hash, tree size, root) of the newest committed entry
        self._reported = (0, time.monotonic())
        self._latest_event_id: str | None = None
        self._publishing = asyncio.Lock()
        self._ticker: asyncio.Task | None = None
        self._subscriber = self.broker.subscriber(
            *RECORDED_TOPICS,
            batch=True,
            max_records=settings.batch_max_records,
            batch_timeout_ms=settings.batch_timeout_ms,
            decoder=raw_values,
            title="audit:record",
            description="Every record of every topic, appended to the ledger.",
            **consumer_options(settings.group),
        )
        self._subscriber(self.on_records)

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

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(min(self.settings.checkpoint_interval_s, 1.0))
            await self.checkpoint_if_due()

    async def start(self) -> None:
        if self.signer is None:
            self.signer = checkpoint_signer(self.settings)  # refuses without a key unless in unsigned dev mode
        self._head = (*self.ledger.head(), *self.ledger.tree_head())
        self._reported = (self._head[0], time.monotonic())
        await self.broker.start()
        recorded = tuple(BY_NAME[name] for name in RECORDED_TOPICS)
        self._lag = asyncio.create_task(LagWatch(self.settings.kafka, self.settings.group, recorded, self.watch).run())
        self._ticker = asyncio.create_task(self._tick())

    def http_server(self) -> uvicorn.Server:
        """The health endpoints' server (the run loop serves it)."""
        return http_server(self.http, self.settings.http_host, self.settings.http_port)

    async def stop(self) -> None:
        await cancel_tasks(self._ticker, self._lag)
        await self.broker.stop()
        self.ledger.close()


def build(
    settings: AuditSettings | None = None, ledger: Ledger | None = None, signer: Signer | None = None
) -> AuditService:
    """Build the audit service from settings, its ledger opened (or the one given); the signing key is loaded
    at start unless given. Nothing connects until start()."""
    settings = settings or AuditSettings()
    return AuditService(settings, ledger if ledger is not None else Ledger(settings.ledger_path), signer)


def specification(settings: AuditSettings | None = None) -> AsyncAPI:
    """The AsyncAPI document of the audit service (built over a throwaway ledger: it writes nothing)."""
    settings = settings or AuditSettings()
    with tempfile.TemporaryDirectory() as scratch:
        service = build(settings.model_copy(update={"state_dir": Path(scratch)}))
        service.ledger.close()
    return AsyncAPI(service.broker, title="Countermand audit", version="1.0.0")
