"""Composition root of the impact service: view follower, assessor, their subscribers and publishers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import structlog
import uvicorn
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.specification import AsyncAPI

from services.impact.api import create_api
from services.impact.assessor import Assessor
from services.impact.directives import Directives
from services.impact.recovery import recover_directives
from services.impact.registry_view import RegistryView
from services.impact.settings import ImpactSettings
from services.impact.user_columns import Population
from services.impact.view_follower import ViewFollower
from services.impact.view_snapshot import ViewSnapshots, snapshot_path
from shared.contracts.catalogue import DIRECTIVES, IMPACT, USERS, dead_letter_topic
from shared.contracts.directives import DirectiveEvent
from shared.runtime.auth import AuthSettings, Guard
from shared.runtime.broker import consumer_options, declare_publisher, emit, emit_all, make_broker, view_subscriber
from shared.runtime.deadletters import write_dead_letter
from shared.runtime.health import ConsumerWatch, LagWatch
from shared.runtime.http import http_server
from shared.runtime.kafka import OffsetProbe
from shared.runtime.logging import bind_message_ids
from shared.runtime.record_signing import (
    SigningSettings,
    record_signer,
    trusted_keys,
    verify_record,
)
from shared.runtime.service import cancel_tasks
from shared.runtime.signing import KeySet

SERVICE = "impact"
GROUP = "countermand-impact"
DEAD_LETTERS = dead_letter_topic(SERVICE)
log = structlog.get_logger(service=SERVICE)


@dataclass
class ImpactService:
    """The impact service, wired: start() recovers, resumes the view, reconciles, then follows both topics."""

    settings: ImpactSettings
    broker: KafkaBroker
    watch: ConsumerWatch
    follower: ViewFollower
    assessor: Assessor
    view_subscriber: Any
    http: Any = None
    _tasks: list[asyncio.Task] = field(default_factory=list)
    _started: bool = False

    # What the HTTP API and tests read of the running service.
    @property
    def view(self) -> RegistryView:
        return self.follower.view

    @property
    def population(self) -> Population:
        return self.follower.view.population

    @property
    def directives(self) -> Directives:
        return self.assessor.directives

    @property
    def loaded(self) -> bool:
        return self.assessor.loaded

    @property
    def resumed_from(self) -> dict[int, int] | None:
        return self.follower.resumed_from

    @property
    def records_read(self) -> int:
        return self.follower.records_read

    async def start(self) -> None:
        """Rebuild directive state from the impact topic while the view resumes from its snapshot and the broker
        connects its producer, then start both consumers and reconcile what changed meanwhile."""
        self.follower.probe = OffsetProbe(self.settings.kafka, f"impact-probe-{self.settings.instance}")
        async with asyncio.TaskGroup() as starting:  # a failure of one cancels the others
            recovering = starting.create_task(recover_directives(self.settings.kafka, self.settings.instance))
            starting.create_task(self.follower.resume())
            starting.create_task(self.broker.connect())  # no subscriber yet: nothing is handled before both are back
        self.assessor.directives = recovering.result()
        await self.broker.start()
        self._started = True
        self.follower.seek(self.view_subscriber)
        await self.assessor.reconcile()
        if self.settings.snapshot_interval_s:
            self._tasks.append(asyncio.create_task(self.follower.snapshot_every(self.settings.snapshot_interval_s)))
        self._tasks.append(asyncio.create_task(LagWatch(self.settings.kafka, GROUP, (DIRECTIVES,), self.watch).run()))

    async def stop(self) -> None:
        await cancel_tasks(*self._tasks)  # waits, so no snapshot write is cut off half way
        await self.broker.stop()
        if self._started and self.settings.snapshot_on_stop:
            await self.follower.snapshot()
        if self.follower.probe is not None:
            await self.follower.probe.stop()

    async def snapshot(self) -> None:
        """Write the user view and the offsets it reflects now."""
        await self.follower.snapshot()

    def http_server(self) -> uvicorn.Server:
        """A uvicorn server for the HTTP API on the configured address (run it with `await serve()`)."""
        return http_server(self.http, self.settings.http_host, self.settings.http_port)


def build(settings: ImpactSettings | None = None) -> ImpactService:
    """The impact service wired from settings (its snapshot store included); nothing connects until start()."""
    settings = settings or ImpactSettings()
    watch = ConsumerWatch(SERVICE)
    broker = make_broker(settings, SERVICE, watch=watch)
    impact = declare_publisher(broker, IMPACT, "Assessments, affected-set chunks and deltas.")
    signer, keys = record_signer(settings.signing, SERVICE), trusted_keys(settings.signing, SERVICE)
    dead = declare_publisher(broker, DEAD_LETTERS, "Registry records impact refused.")

    async def bury(record: Any, error: Exception) -> None:
        await write_dead_letter(lambda letter: emit(dead, DEAD_LETTERS, letter), record, SERVICE, error, watch)

    async def changed(ids: Any, producers: frozenset[str]) -> None:
        await assessor.changed(ids, producers)  # the assessor is built next, around the follower

    snapshots = ViewSnapshots(snapshot_path(settings.state_dir))
    follower = ViewFollower(settings, snapshots, asyncio.Lock(), changed, bury)
    assessor = Assessor(
        follower,
        publish_all=lambda messages: emit_all(impact, IMPACT, messages, signer=signer),  # per partition, in order
        publish=lambda message: emit(impact, IMPACT, message, signer=signer),
    )
    service = ImpactService(
        settings, broker, watch, follower, assessor, _subscribe(broker, settings, follower, assessor, keys)
    )
    service.http = create_api(service, Guard(settings.auth, SERVICE))
    return service


def _subscribe(
    broker: KafkaBroker, settings: ImpactSettings, follower: ViewFollower, assessor: Assessor, keys: KeySet | None
) -> Any:
    """Register the registry view and the directive consumer; returns the view's subscriber (to seek it)."""
    # Every impact instance needs the WHOLE registry to evaluate a selector: a view, not a consumer group.
    registry = view_subscriber(
        broker,
        USERS,
        batch=True,
        max_records=settings.registry_batch,
        batch_timeout_ms=settings.registry_wait_ms,
        title=f"{USERS.name}:view",
        description="The user registry, materialised as columns.",
    )

    @registry
    async def on_users(msg: KafkaMessage) -> None:
        await follower.on_batch(msg)

    # A plain consumer group: committed offsets mean "assessed and published". What a restarted instance
    # needs of older directives it rebuilds from compliance.impact.v1 (see recovery.py).
    @broker.subscriber(
        DIRECTIVES.name,
        **consumer_options(GROUP),
        title=f"{DIRECTIVES.name}:assess",
        description="Directives to assess and lift.",
    )
    async def on_directive(event: DirectiveEvent, msg: KafkaMessage) -> None:
        bind_message_ids(event.directive_id, event.event_id)
        verify_record(keys, msg.raw_message)  # refused (unsigned, unknown or retired key, altered): dead-lettered
        await assessor.on_directive(event)

    return registry


def specification(settings: ImpactSettings | None = None) -> AsyncAPI:
    """The AsyncAPI document of the impact service."""
    return AsyncAPI(
        build(
            settings or ImpactSettings(auth=AuthSettings(mode="off"), signing=SigningSettings(mode="off"))
        ).broker,  # the Kafka side only
        title="Countermand impact",
        version="1.0.0",
        description="Exact affected sets of directives, from a columnar view of the user registry.",
    )
