"""Composition root of the notifier: broker, subscribers, publishers, stores and channels from settings."""

from __future__ import annotations

import asyncio
import sqlite3

import uvicorn
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

from services.notifier.channels import channels_of
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
from shared.runtime.broker import consumer_options, declare_publisher, emit, make_broker
from shared.runtime.health import ConsumerWatch, LagWatch
from shared.runtime.http import health_app, http_server
from shared.runtime.service import cancel_tasks

SERVICE = "notifier"


class NotifierService:
    """The running service; nothing connects until start()."""

    def __init__(self, settings: NotifierSettings) -> None:
        self.settings = settings
        self.watch = ConsumerWatch(SERVICE)
        self.broker: KafkaBroker = make_broker(settings, SERVICE, watch=self.watch)
        self.http = health_app(SERVICE, self._ready, self.watch)
        self._lag: asyncio.Task | None = None
        self.registry = RegistryFeed(settings, UserDirectory(), self._dead_letter)
        self.channels = channels_of(settings)
        self.handlers: Handlers | None = None
        self.ledger: Ledger | None = None
        self._conn: sqlite3.Connection | None = None
        self._notifications = declare_publisher(
            self.broker, NOTIFICATIONS, "Notices requested, delivered or failed, one per recipient and action."
        )
        self._subscribe()

    def _subscribe(self) -> None:
        options = consumer_options(self.settings.group_id)
        self.broker.subscriber(
            IMPACT.name,
            title=f"{IMPACT.name}:notifier",
            description="Affected sets (restricted, or restored for a lift) to notify.",
            **options,
        )(self.on_impact)
        self.broker.subscriber(
            ENFORCEMENT.name,
            title=f"{ENFORCEMENT.name}:notifier",
            description="DirectiveEnforced: every cluster confirmed; notices may go out.",
            **options,
        )(self.on_enforcement)

    async def on_impact(self, event: ImpactEvent) -> None:
        await self.running().on_impact(event)

    async def on_enforcement(self, event: EnforcementEvent) -> None:
        await self.running().on_enforcement(event)

    async def start(self) -> None:
        self._conn = open_database(self.settings.home / "notifier.db")
        self.ledger = Ledger(self._conn)
        delivery = Delivery(
            self.settings, self.registry, self.ledger, self.channels, Wording(), self._publish, self._dead_letter
        )
        self.handlers = Handlers(PendingStore(self._conn), delivery)
        await self.broker.connect()
        await self.registry.start()
        await self.broker.start()
        await self.handlers.resume()
        self._lag = asyncio.create_task(
            LagWatch(self.settings.kafka, self.settings.group_id, (IMPACT, ENFORCEMENT), self.watch).run()
        )

    async def stop(self) -> None:
        await cancel_tasks(self._lag)
        await self.broker.stop()
        await self.registry.stop()
        await self.channels.close()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _ready(self) -> bool:
        return self.handlers is not None and self.registry.caught_up

    def http_server(self) -> uvicorn.Server:
        """The health endpoints' server (the run loop serves it)."""
        return http_server(self.http, self.settings.http_host, self.settings.http_port)

    async def _publish(self, message: Event) -> None:
        await emit(self._notifications, NOTIFICATIONS, message)

    async def _dead_letter(self, letter: DeadLetter) -> None:
        await self.broker.publish(letter, topic=dead_letter_topic(SERVICE).name, key=SERVICE.encode())

    def running(self) -> Handlers:
        """The handlers of a started notifier."""
        if self.handlers is None:
            raise RuntimeError("notifier not started")
        return self.handlers


def build(settings: NotifierSettings | None = None) -> NotifierService:
    """The notifier, wired from settings (environment when none given)."""
    return NotifierService(settings or NotifierSettings())


def specification(settings: NotifierSettings | None = None) -> AsyncAPI:
    """AsyncAPI document of the notifier (the registry is read by a plain consumer, see registry_feed.py)."""
    return AsyncAPI(
        build(settings).broker,
        title="Countermand notifier",
        version="1",
        description="Tells customers once, after enforcement is confirmed, that their access changed.",
    )
