"""Composition root of the notifier: broker, subscribers, publishers, stores and channels from settings."""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

from services.notifier.channels import Channels, channels_of
from services.notifier.delivery import Delivery
from services.notifier.delivery_ledger import Ledger, open_database
from services.notifier.directory import UserDirectory
from services.notifier.handlers import Handlers
from services.notifier.pending import PendingStore
from services.notifier.registry_feed import RegistryFeed
from services.notifier.settings import NotifierSettings
from services.notifier.wording import Wording
from shared.contracts.catalogue import ENFORCEMENT, IMPACT, NOTIFICATIONS, dead_letter_topic
from shared.contracts.deadletter import DeadLetter
from shared.contracts.enforcement import EnforcementEvent
from shared.contracts.envelope import Event
from shared.contracts.impact import ImpactEvent
from shared.runtime.broker import consumer_options, declare_publisher, emit_all, make_broker
from shared.runtime.health import ConsumerWatch, LagWatch
from shared.runtime.http import health_app, http_server
from shared.runtime.service import cancel_tasks

SERVICE = "notifier"


@dataclass
class NotifierService:
    """The notifier, wired: its stores are open, nothing connects until start()."""

    settings: NotifierSettings
    broker: KafkaBroker
    watch: ConsumerWatch
    database: sqlite3.Connection
    ledger: Ledger
    channels: Channels
    registry: RegistryFeed
    handlers: Handlers
    http: object = None
    started: bool = False
    _lag: asyncio.Task | None = field(default=None, repr=False)
    _grants: asyncio.Task | None = field(default=None, repr=False)

    async def start(self) -> None:
        await self.broker.connect()
        self.registry.grants, self.registry.grants_checked = asyncio.Queue(), self.handlers.coverage.grants_checked()
        self._grants = asyncio.create_task(self.handlers.follow_grants(self.registry.grants), name="notifier-grants")
        await self.registry.start()
        await self.broker.start()
        await self.handlers.resume()
        self.started = True
        self._lag = asyncio.create_task(
            LagWatch(self.settings.kafka, self.settings.group_id, (IMPACT, ENFORCEMENT), self.watch).run()
        )

    async def stop(self) -> None:
        await cancel_tasks(self._lag, self._grants)
        await self.broker.stop()
        await self.registry.stop()
        await self.channels.close()
        self.close()

    def close(self) -> None:
        """Close the stores (stop() does; idempotent)."""
        self.database.close()

    def ready(self) -> bool:
        return self.started and self.registry.caught_up

    def http_server(self) -> uvicorn.Server:
        """The health endpoints' server (the run loop serves it)."""
        return http_server(self.http, self.settings.http_host, self.settings.http_port)


def build(settings: NotifierSettings | None = None) -> NotifierService:
    """The notifier wired from settings (environment when none given): its stores opened, nothing connected."""
    settings = settings or NotifierSettings()
    watch = ConsumerWatch(SERVICE)
    broker = make_broker(settings, SERVICE, watch=watch)
    notifications = declare_publisher(
        broker, NOTIFICATIONS, "Notices requested, delivered or failed, one per recipient and action."
    )

    async def publish(messages: list[Event]) -> None:  # each enqueued, then every ack awaited (no task per message)
        await emit_all(notifications, NOTIFICATIONS, messages, window=settings.publish_group)

    async def dead_letter(letter: DeadLetter) -> None:
        await broker.publish(letter, topic=dead_letter_topic(SERVICE).name, key=SERVICE.encode())

    database = open_database(settings.home / "notifier.db")
    ledger, channels = Ledger(database), channels_of(settings)
    registry = RegistryFeed(settings, UserDirectory(), dead_letter)
    delivery = Delivery(settings, registry, ledger, channels, Wording(), publish, dead_letter)
    handlers = Handlers(PendingStore(database), delivery)
    _subscribe(broker, settings, handlers)
    service = NotifierService(settings, broker, watch, database, ledger, channels, registry, handlers)
    service.http = health_app(SERVICE, service.ready, watch)
    return service


def _subscribe(broker: KafkaBroker, settings: NotifierSettings, handlers: Handlers) -> None:
    options = consumer_options(settings.group_id)

    @broker.subscriber(
        IMPACT.name,
        title=f"{IMPACT.name}:notifier",
        description="Affected sets (restricted, or restored for a lift) to notify.",
        **options,
    )
    async def on_impact(event: ImpactEvent) -> None:
        await handlers.on_impact(event)

    @broker.subscriber(
        ENFORCEMENT.name,
        title=f"{ENFORCEMENT.name}:notifier",
        description="DirectiveEnforced: every cluster confirmed; notices may go out.",
        **options,
    )
    async def on_enforcement(event: EnforcementEvent) -> None:
        await handlers.on_enforcement(event)


def specification(settings: NotifierSettings | None = None) -> AsyncAPI:
    """AsyncAPI document of the notifier (the registry is read by a plain consumer, see registry_feed.py).

    Built with throwaway stores: writing the document leaves nothing in the state folder.
    """
    settings = settings or NotifierSettings()
    with tempfile.TemporaryDirectory() as scratch:
        service = build(settings.model_copy(update={"state_dir": Path(scratch), "outbox_path": None}))
        service.close()
    return AsyncAPI(
        service.broker,
        title="Countermand notifier",
        version="1",
        description="Tells customers once, after enforcement is confirmed, that their access changed.",
    )
