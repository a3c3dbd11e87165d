"""Composition root of the impact service: view follower, assessor, their subscribers and publishers."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import structlog
import uvicorn
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.specification import AsyncAPI
from opentelemetry.sdk.trace import TracerProvider

from services.impact.api import create_api
from services.impact.assessor import Assessor
from services.impact.directives import Directives
from services.impact.leadership import Leadership, sole_assignor
from services.impact.recovery import ImpactReplay, fold_record, recover_directives
from services.impact.registry_view import RegistryView
from services.impact.settings import ImpactSettings
from services.impact.user_columns import Population
from services.impact.view_follower import ViewFollower
from services.impact.view_snapshot import ViewSnapshots, snapshot_path
from services.impact.writer import TRANSACTION_TIMEOUT_MS, ImpactWriter
from shared.contracts.catalogue import DIRECTIVES, IMPACT, USERS, dead_letter_topic
from shared.contracts.directives import DirectiveEvent
from shared.runtime.auth import AuthSettings, Guard
from shared.runtime.broker import consumer_options, declare_publisher, emit, make_broker, view_subscriber
from shared.runtime.deadletters import write_dead_letter
from shared.runtime.health import ConsumerWatch, LagWatch
from shared.runtime.http import http_server
from shared.runtime.kafka import OffsetProbe
from shared.runtime.logging import bind_message_ids
from shared.runtime.producer_watch import OnFatal
from shared.runtime.record_signing import (
    SigningSettings,
    record_signer,
    trusted_keys,
    verify_record,
)
from shared.runtime.service import cancel_tasks
from shared.runtime.signing import KeySet
from shared.runtime.tracing import tracer_provider

SERVICE = "impact"
GROUP = "countermand-impact"
TRANSACTIONAL_ID = GROUP  # one for every instance: the active one's start fences the others (see writer.py)
DEAD_LETTERS = dead_letter_topic(SERVICE)
log = structlog.get_logger(service=SERVICE)


@dataclass
class ImpactService:
    """The impact service, wired: start() resumes the view and joins the directive group, as the active instance
    (directive state rebuilt, view reconciled) or a standby (see leadership.py)."""

    settings: ImpactSettings
    broker: KafkaBroker
    watch: ConsumerWatch
    follower: ViewFollower
    assessor: Assessor
    view_subscriber: Any
    writer: ImpactWriter
    leadership: Leadership
    published: ImpactReplay  # what the active instance published, folded as it comes (a standby's dry runs)
    http: Any = None
    on_fatal: OnFatal | None = None  # what stops the process (run() sets it); in tests, nothing
    _tasks: list[asyncio.Task] = field(default_factory=list)
    _started: bool = False
    _view_ready: bool = False

    # What the HTTP API and tests read of the running service.
    @property
    def view(self) -> RegistryView:
        return self.follower.view

    @property
    def population(self) -> Population:
        return self.follower.view.population

    @property
    def directives(self) -> Directives:
        """The active instance's own; a standby's as the active one published them (for dry runs)."""
        return self.assessor.directives if self.leadership.ready.is_set() else self.published.directives

    @property
    def loaded(self) -> bool:
        """Ready: the active instance once it has reconciled; a standby once its view has caught up at start."""
        return self.assessor.loaded or (self._view_ready and self.role == "standby")

    @property
    def resumed_from(self) -> dict[int, int] | None:
        return self.follower.resumed_from

    @property
    def records_read(self) -> int:
        return self.follower.records_read

    @property
    def role(self) -> str:
        """active (assesses and publishes), promoting, or standby (follows the registry, answers dry runs)."""
        return self.leadership.role

    async def start(self) -> None:
        """Load the view, join the directive group, and return once the role is known: as the active instance,
        once the directive state is rebuilt from the impact topic and what changed meanwhile reconciled."""
        self.follower.probe = OffsetProbe(self.settings.kafka, f"impact-probe-{self.settings.instance}")
        await self.follower.probe.start()
        await self.follower.resume()
        await self.broker.start()
        self._started = True
        self.follower.seek(self.view_subscriber)
        await self.follower.catch_up()
        await self.leadership.settled.wait()
        self._view_ready = True
        if self.settings.snapshot_interval_s:
            self._tasks.append(asyncio.create_task(self.follower.snapshot_every(self.settings.snapshot_interval_s)))
        self._tasks.append(asyncio.create_task(LagWatch(self.settings.kafka, GROUP, (DIRECTIVES,), self.watch).run()))

    async def promote(self) -> int:
        """Become the active instance: fence any earlier one, rebuild the directive state from what is committed
        on the impact topic now, reconcile the view against it. Returns the epoch this instance holds."""
        began = time.monotonic()
        epoch = await self.writer.start()  # aborts a dead or paused predecessor's open transaction
        log.info("transactional id registered: earlier instances fenced", epoch=epoch, s=_since(began))
        if self.on_fatal is not None:
            self.writer.watch(self.on_fatal)
        self.assessor.directives = await recover_directives(self.settings.kafka, self.settings.instance)
        await self.assessor.reconcile()
        log.info("promoted", s=_since(began))
        return epoch

    def lost(self, reason: str) -> None:
        """No longer the active instance: stop (the orchestrator restarts it as a standby) rather than go on."""
        log.error("impact instance no longer active; stopping", reason=reason)
        if self.on_fatal is not None:
            self.on_fatal("impact leadership", RuntimeError(reason))

    def watch_producers(self, on_fatal: OnFatal) -> None:
        """Stop the process through `on_fatal` if the writer fails for good or this instance loses the lead."""
        self.on_fatal = on_fatal
        if self.writer.started:  # promoted already (or promoting): else promote() watches it
            self.writer.watch(on_fatal)

    async def stop(self) -> None:
        await cancel_tasks(*self._tasks)  # waits, so no snapshot write is cut off half way
        await self.broker.stop()  # leaves the group: a standby takes over at once
        await self.leadership.stop()
        await self.writer.stop()
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


def _since(began: float) -> float:
    return round(time.monotonic() - began, 3)


def build(settings: ImpactSettings | None = None) -> ImpactService:
    """The impact service wired from settings (its snapshot store included); nothing connects until start()."""
    settings = settings or ImpactSettings()
    watch = ConsumerWatch(SERVICE)
    traces = tracer_provider(settings.telemetry, SERVICE)  # one for both brokers: one exporter, one trace per cause
    broker = make_broker(settings, SERVICE, watch=watch, traces=traces)
    # Documented with the service's broker (its AsyncAPI); published through the transactional writer.
    declare_publisher(broker, IMPACT, "Assessments, affected-set chunks and deltas.")
    signer, keys = record_signer(settings.signing, SERVICE), trusted_keys(settings.signing, SERVICE)
    dead = declare_publisher(broker, DEAD_LETTERS, "Registry records impact refused.")

    async def bury(record: Any, error: Exception) -> None:
        await write_dead_letter(lambda letter: emit(dead, DEAD_LETTERS, letter), record, SERVICE, error, watch)

    async def changed(ids: Any, producers: frozenset[str]) -> None:
        await assessor.changed(ids, producers)  # the assessor is built next, around the follower

    snapshots = ViewSnapshots(snapshot_path(settings.state_dir))
    follower = ViewFollower(settings, snapshots, asyncio.Lock(), changed, bury)
    writer = _writer(settings, signer, traces)
    assessor = Assessor(follower, publish_all=writer.publish_all, publish=writer.publish)
    leadership = Leadership(promote=lambda: service.promote(), lost=lambda reason: service.lost(reason))
    published = ImpactReplay()
    subscriber = _subscribe(broker, settings, follower, assessor, keys, leadership)
    _follow_published(broker, leadership, published)
    service = ImpactService(settings, broker, watch, follower, assessor, subscriber, writer, leadership, published)
    service.http = create_api(service, Guard(settings.auth, SERVICE))
    return service


def _writer(settings: ImpactSettings, signer: Any, traces: TracerProvider | None) -> ImpactWriter:
    """The transactional writer of the output; started only when this instance becomes the active one."""
    broker = make_broker(
        settings,
        SERVICE,
        dead_letters=False,
        traces=traces,
        transactional_id=TRANSACTIONAL_ID,
        transaction_timeout_ms=TRANSACTION_TIMEOUT_MS,
    )
    return ImpactWriter(
        broker, declare_publisher(broker, IMPACT, "Assessments, affected-set chunks and deltas."), signer
    )


def _subscribe(
    broker: KafkaBroker,
    settings: ImpactSettings,
    follower: ViewFollower,
    assessor: Assessor,
    keys: KeySet | None,
    leadership: Leadership,
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

    # The consumer group elects the active instance: one member gets every partition (leadership.py). Committed
    # offsets mean "assessed and published"; what a new active instance needs of older directives it rebuilds
    # from compliance.impact.v1 (see recovery.py).
    @broker.subscriber(
        DIRECTIVES.name,
        **consumer_options(
            GROUP,
            partition_assignment_strategy=(sole_assignor(leadership.claim),),
            listener=leadership.listener(),
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=settings.session_timeout_ms // 3,
        ),
        title=f"{DIRECTIVES.name}:assess",
        description="Directives to assess and lift (by the active instance).",
    )
    async def on_directive(event: DirectiveEvent, msg: KafkaMessage) -> None:
        bind_message_ids(event.directive_id, event.event_id)
        verify_record(keys, msg.raw_message)  # refused (unsigned, unknown or retired key, altered): dead-lettered
        await leadership.ready.wait()  # given the partitions: assess once the directive state is rebuilt
        await assessor.on_directive(event)

    return registry


def _follow_published(broker: KafkaBroker, leadership: Leadership, published: ImpactReplay) -> None:
    """A standby answers dry runs against the directives the active instance published (amendments, lifts)."""

    @view_subscriber(
        broker,
        IMPACT,
        batch=True,
        title=f"{IMPACT.name}:standby",
        description="What the active instance published: a standby's directive state for dry runs.",
    )
    async def on_published(msg: KafkaMessage) -> None:
        if leadership.ready.is_set():
            return  # the active instance holds its own state
        for record in msg.raw_message:
            fold_record(published, record)


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
