"""Composition root of the agent: its parts built from settings (store passed in), the commands subscriber,
and the lifecycle (recover, serve, consume until caught up and synced, heartbeat)."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from faststream.kafka import KafkaBroker, TopicPartition
from faststream.kafka.annotations import KafkaMessage
from faststream.specification import AsyncAPI

from services.agent import routines
from services.agent.access import AccessChecker
from services.agent.handling import CommandHandling
from services.agent.holding import Holding
from services.agent.http import access_api
from services.agent.readiness import Readiness, offsets_at_start
from services.agent.reports import Reports
from services.agent.restriction_store import RestrictionStore
from services.agent.serving import EmbeddedHttp
from services.agent.set_reader import SetReader
from services.agent.settings import AgentSettings
from shared.contracts.catalogue import ACKS, COMMANDS, dead_letter_topic
from shared.contracts.envelope import utc_now
from shared.contracts.serving import ClusterCommand
from shared.runtime.auth import AuthSettings, Guard
from shared.runtime.broker import consumer_options, declare_publisher, make_broker
from shared.runtime.deadletters import write_dead_letter
from shared.runtime.health import ConsumerWatch, LagWatch
from shared.runtime.record_signing import SigningSettings, record_signer, trusted_keys
from shared.runtime.service import cancel_tasks
from shared.runtime.topics import partition_for

SERVICE = "agent"
STOP_TIMEOUT_S = 15.0


@dataclass
class Agent:
    """One serving cluster's agent: applies commands durably, acknowledges, heartbeats, answers checks.

    Its parts come from build(); start() serves HTTP (503 until ready), then consumes its commands partition.
    """

    settings: AgentSettings
    broker: KafkaBroker
    watch: ConsumerWatch
    subscriber: Any  # the commands partition of this cluster
    partition: int
    holding: Holding
    reports: Reports
    handling: CommandHandling
    readiness: Readiness
    clock: Callable[[], datetime] = utc_now
    http: EmbeddedHttp | None = None  # set by build(): its API describes this agent
    log: Any = field(default_factory=lambda: structlog.get_logger(service=SERVICE))
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    _opened: bool = False

    @property
    def checker(self) -> AccessChecker:
        """What an in-process gateway asks (see the README)."""
        return self.holding.checker

    @property
    def http_port(self) -> int | None:
        return self.http.port if self.http is not None else None

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Serve (not ready), then consume until caught up."""
        await self.open()
        await self.consume()

    async def open(self) -> None:
        """Connect the producer, serve HTTP (answering 503) and start heartbeats; the state was loaded by build()."""
        self._opened = True
        await self.broker.connect()
        if self.handling.sets is not None:
            await self.handling.sets.start()
        assert self.http is not None
        await self.http.start()
        self.tasks.append(asyncio.create_task(self._heartbeats(), name="agent-heartbeats"))
        state = self.holding.state
        self.log.info("agent recovered", held=len(state.held), staging=len(state.staging), synced=self.readiness.synced)

    async def consume(self) -> None:
        """Note the commands' end offsets, start consuming; ready once the group reaches them and synced."""
        begin, end = await offsets_at_start(self.settings.kafka, COMMANDS)
        if len(end) != COMMANDS.partitions:
            raise RuntimeError(
                f"{COMMANDS.name} has {len(end)} partitions, the catalogue says {COMMANDS.partitions}: "
                f"this cluster's commands would not be on partition {self.partition}; restore the "
                "catalogue's partition count (`countermand topics apply` creates it so)"
            )
        begin, end = {self.partition: begin[self.partition]}, {self.partition: end[self.partition]}
        await self.broker.start()
        lag = LagWatch(
            self.settings.kafka,
            self.settings.group,
            (COMMANDS,),
            self.watch,
            partitions={COMMANDS.name: [self.partition]},
        )
        self.tasks.append(asyncio.create_task(lag.run(), name="agent-lag-watch"))
        self.tasks.append(asyncio.create_task(self._catch_up(begin, end), name="agent-catch-up"))

    async def stop(self) -> None:
        """Stop consuming, serving and heartbeating; close the store (idempotent)."""
        if not self._opened:
            self.holding.store.close()
            return
        self._opened = False
        await cancel_tasks(*self.tasks)
        self.tasks.clear()
        try:
            # With the broker gone the producer would wait for in-flight heartbeats indefinitely; what
            # matters is durable already (the snapshot), so stopping is bounded.
            await asyncio.wait_for(self.broker.stop(), STOP_TIMEOUT_S)
        except TimeoutError:
            self.log.warning("broker did not stop in time: leaving it", timeout_s=STOP_TIMEOUT_S)
        if self.handling.sets is not None:
            await self.handling.sets.stop()
        if self.http is not None:
            await self.http.stop()
        await self.holding.close()

    async def _catch_up(self, begin: dict[int, int], end: dict[int, int]) -> None:
        await routines.catch_up(self.settings, begin, end, self.log)
        self.readiness.caught_up = True
        if not self.readiness.synced:
            self.log.info("caught up with commands: waiting for the control plane's sync marker")
        await self.become_ready()

    async def become_ready(self) -> None:
        """Answer checks once caught up and synced (called when either happens; acts once)."""
        if not self.readiness.ready or self.checker.ready:
            return
        self.checker.mark_ready(self.clock())
        self.log.info("caught up with commands and synced: ready", held=len(self.holding.state.held))
        self.tasks.append(
            asyncio.create_task(routines.housekeeping(self.handling, self.settings, self.log), name="agent-staging")
        )
        try:
            await self.heartbeat()  # tell the control plane now rather than at the next interval
        except Exception as exc:
            self.log.warning("heartbeat failed", error=repr(exc))

    # --- commands and heartbeats -----------------------------------------------------------------

    async def receive(self, command: ClusterCommand, record: Any) -> None:
        """A record of the commands partition: any cluster's shows the fetch loop delivers; this cluster's are
        applied when signed by a trusted key."""
        self.checker.heard(self.clock())
        if await self.handling.refuse_unsigned(command, record):
            return
        await self.handle(command, record.partition, record.offset)

    async def handle(self, command: ClusterCommand, partition: int, offset: int) -> None:
        """Apply one command (see CommandHandling.handle); a sync marker may make the agent ready."""
        await self.handling.handle(command, partition, offset)
        await self.become_ready()

    async def _heartbeats(self) -> None:
        await routines.heartbeats(self.heartbeat, self.settings.heartbeat_interval_s, self.log)

    async def heartbeat(self) -> None:
        """Report what is held; an acknowledged heartbeat while consuming counts as contact."""
        beat = self.reports.heartbeat(self.holding.state, self.holding.offsets, self.checker.ready)
        if not beat.ready:
            self.readiness.ask(beat.event_id)  # before it is sent: its answer may come back at once
        await self.reports.send(beat)
        if self.consuming:
            # acks=all: the broker answered, and the command consumer is still fetching.
            self.checker.heard(self.clock())

    @property
    def consuming(self) -> bool:
        """Whether the commands consumer's fetch loop is running."""
        return bool(self.subscriber.running and any(not task.done() for task in self.subscriber.tasks))

    def describe(self) -> dict[str, Any]:
        """What /v1/state shows."""
        contact = self.checker.last_contact
        return {
            "cluster_id": self.settings.cluster_id,
            "replica_id": self.settings.replica_id,
            "region": self.settings.region,
            "models": list(self.settings.models),
            "ready": self.checker.ready,
            "synced": self.readiness.synced,
            "stale": self.checker.stale(self.clock()),
            "last_contact": contact.isoformat() if contact else None,
            "offsets": {str(p): o for p, o in sorted(self.holding.offsets.items())},
            **self.holding.state.describe(),
        }


def build(
    settings: AgentSettings, clock: Callable[[], datetime] = utc_now, store: RestrictionStore | None = None
) -> Agent:
    """The agent for one cluster, its state loaded from `store` (default: its SQLite file under the state dir)
    and its subscriber and publisher registered; nothing connected yet."""
    log = structlog.get_logger(service=SERVICE, cluster_id=settings.cluster_id, replica_id=settings.replica_id)
    keys = trusted_keys(settings.signing, SERVICE)  # whose commands it applies: enforcement's
    signer = record_signer(settings.signing, SERVICE)  # its cluster's key: only signed acks and heartbeats count
    watch = ConsumerWatch(SERVICE)
    broker = make_broker(settings, SERVICE, watch=watch)
    store = store or RestrictionStore(settings.state_dir / SERVICE / settings.store_name)
    holding = Holding(store, AccessChecker(stale_after=timedelta(seconds=settings.stale_after_s)))
    holding.load()
    readiness = Readiness(settings.cluster_id, synced=store.synced(), replica_id=settings.replica_id)
    publisher = declare_publisher(broker, ACKS, "Command acks and heartbeats of this cluster.")
    reports = Reports(publisher, signer, settings, log)
    # Commands are keyed by cluster id: this cluster's are all on one partition, and the agent reads that
    # partition alone (other clusters' commands that share it are skipped by CommandHandling.handle).
    partition = partition_for(COMMANDS, settings.cluster_id.encode())
    subscriber = broker.subscriber(
        partitions=[TopicPartition(COMMANDS.name, partition)],
        **consumer_options(settings.group),
        title=f"{COMMANDS.name}:agent",
        description="Restrict, delta and lift commands and sync markers of this cluster's partition; only "
        "this cluster's are applied.",
    )

    async def bury(record: Any, exc: Exception) -> None:
        async def publish(letter: Any) -> None:
            await broker.publish(letter, topic=dead_letter_topic(SERVICE).name, key=SERVICE.encode())

        await write_dead_letter(publish, record, SERVICE, exc, watch)

    sets = SetReader(settings.kafka, keys, clock, bury, purpose=f"{SERVICE}-{settings.cluster_id}-sets")
    agent = Agent(
        settings,
        broker,
        watch,
        subscriber,
        partition,
        holding,
        reports,
        CommandHandling(settings.cluster_id, holding, reports, readiness, keys, clock, log, sets),
        readiness,
        clock,
        log=log,
    )
    guard = Guard(settings.auth, SERVICE)
    api = access_api(holding.checker, agent.describe, clock, watch, guard, settings.cluster_id)
    agent.http = EmbeddedHttp(api, settings.http_host, settings.http_port)

    @subscriber
    async def on_command(command: ClusterCommand, message: KafkaMessage) -> None:
        await agent.receive(command, message.raw_message)

    return agent


def specification(settings: AgentSettings | None = None) -> AsyncAPI:
    """The agent's AsyncAPI document (built over a throwaway store: it writes nothing)."""
    settings = settings or AgentSettings(cluster_id="example", auth=AuthSettings(mode="off"))
    with tempfile.TemporaryDirectory() as scratch:
        agent = build(settings.model_copy(update={"state_dir": Path(scratch), "signing": SigningSettings(mode="off")}))
        agent.holding.store.close()
    return AsyncAPI(
        agent.broker,
        title="Countermand agent",
        version="1.0.0",
        description="Applies its cluster's restrict/delta/lift commands, acks them, answers checks.",
    )
