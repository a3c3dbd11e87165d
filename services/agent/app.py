"""Composition root of the agent: Kafka consumer of its cluster's commands, acks, heartbeats and HTTP."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
import uvicorn
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from faststream.kafka import KafkaBroker, TopicPartition
from faststream.kafka.annotations import KafkaMessage
from faststream.specification import AsyncAPI

from services.agent.access import AccessChecker
from services.agent.command_effects import Applied, Failed, Outcome, expire_staging, on_command
from services.agent.http import access_api, server_config
from services.agent.readiness import Readiness, behind, committed_offsets, offsets_at_start
from services.agent.restriction_store import RestrictionStore
from services.agent.restrictions import Restrictions
from services.agent.settings import AgentSettings
from shared.contracts.catalogue import ACKS, COMMANDS
from shared.contracts.envelope import envelope, utc_now
from shared.contracts.serving import (
    REFUSED,
    AgentHeartbeat,
    ClusterCommand,
    ClusterSynced,
    CommandApplied,
    CommandFailed,
    DeltaCommand,
    HeldDirective,
    LiftCommand,
    RestrictCommand,
)
from shared.runtime.auth import AuthSettings, Guard
from shared.runtime.broker import consumer_options, declare_publisher, emit, make_broker
from shared.runtime.dispatch import Dispatch
from shared.runtime.health import ConsumerWatch, LagWatch
from shared.runtime.kafka import admin
from shared.runtime.logging import bind_message_ids
from shared.runtime.record_signing import SigningSettings, record_signer, trusted_keys, verify_record
from shared.runtime.service import cancel_tasks
from shared.runtime.signing import SignatureRefused
from shared.runtime.topics import partition_for
from shared.runtime.uvicorn_fence import embedded_server

SERVICE = "agent"
STOP_TIMEOUT_S = 15.0


class AgentService:
    """One serving cluster's agent: applies commands durably, acknowledges, heartbeats, answers checks."""

    def __init__(
        self, settings: AgentSettings, store: RestrictionStore, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.log = structlog.get_logger(service=SERVICE, cluster_id=settings.cluster_id)
        self.watch = ConsumerWatch(SERVICE)
        self.broker: KafkaBroker = make_broker(settings, SERVICE, watch=self.watch)
        self.acks = declare_publisher(self.broker, ACKS, "Command acks and heartbeats of this cluster.")
        self.keys = trusted_keys(settings.signing, SERVICE)  # whose commands it applies: enforcement's
        self.signer = record_signer(settings.signing, SERVICE)  # its cluster's key: acks and heartbeats count
        self.checker = AccessChecker(stale_after=timedelta(seconds=settings.stale_after_s))
        self.state = Restrictions()
        self.offsets: dict[int, int] = {}
        self.readiness = Readiness(settings.cluster_id)
        self.http_app = access_api(
            self.checker, self.describe, clock, self.watch, Guard(settings.auth, SERVICE), settings.cluster_id
        )
        self.http_port: int | None = None
        self._opened = False
        self._server: uvicorn.Server | None = None
        self._serving: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._command_heard = 0.0  # monotonic time of the last command consumed (housekeeping waits for a lull)
        self._subscribe()

    def _subscribe(self) -> None:
        agent = self

        # Commands are keyed by cluster id: this cluster's are all on one partition, and the agent reads
        # that partition alone (other clusters' commands that share it are skipped in handle()).
        self.partition = partition_for(COMMANDS, self.settings.cluster_id.encode())
        self._commands = self.broker.subscriber(
            partitions=[TopicPartition(COMMANDS.name, self.partition)],
            **consumer_options(self.settings.group),
            title=f"{COMMANDS.name}:agent",
            description="Restrict, delta and lift commands and sync markers of this cluster's partition; only "
            "this cluster's are applied.",
        )

        @self._commands
        async def on_command(command: ClusterCommand, message: KafkaMessage) -> None:
            agent.checker.heard(agent.clock())  # any command, any cluster: the fetch loop delivers
            if await agent.refuse_unsigned(command, message.raw_message):
                return
            await agent.handle(command, message.raw_message.partition, message.raw_message.offset)

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Recover, serve (not ready), then consume until caught up."""
        await self.open()
        await self.consume()

    async def open(self) -> None:
        """Load the restrictions, connect the producer, serve HTTP (answering 503) and start heartbeats."""
        self._opened = True
        self.state, self.offsets = self.store.load()
        self.readiness = Readiness(self.settings.cluster_id, synced=self.store.synced())
        self.checker.replace(self.state.held)
        await self.broker.connect()
        await self._serve_http()
        self._tasks.append(asyncio.create_task(self._heartbeats(), name="agent-heartbeats"))
        self.log.info(
            "agent recovered", held=len(self.state.held), staging=len(self.state.staging), synced=self.readiness.synced
        )

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
        self._tasks.append(asyncio.create_task(lag.run(), name="agent-lag-watch"))
        self._tasks.append(asyncio.create_task(self._await_catch_up(begin, end), name="agent-catch-up"))

    async def stop(self) -> None:
        """Stop consuming, serving and heartbeating; close the store (idempotent)."""
        if not self._opened:
            self.store.close()
            return
        self._opened = False
        await cancel_tasks(*self._tasks)
        self._tasks.clear()
        try:
            # With the broker gone the producer would wait for in-flight heartbeats indefinitely; what
            # matters is durable already (the snapshot), so stopping is bounded.
            await asyncio.wait_for(self.broker.stop(), STOP_TIMEOUT_S)
        except TimeoutError:
            self.log.warning("broker did not stop in time: leaving it", timeout_s=STOP_TIMEOUT_S)
        if self._server is not None and self._serving is not None:
            self._server.should_exit = True
            await self._serving
            self._server = self._serving = None
        self.store.close()

    async def _serve_http(self) -> None:
        self._server = embedded_server(server_config(self.http_app, self.settings.http_host, self.settings.http_port))
        serving = asyncio.create_task(self._server.serve(), name="agent-http")
        while not self._server.started:
            if serving.done():
                serving.result()  # raises the bind error
                raise RuntimeError("HTTP server stopped before it started")
            await asyncio.sleep(0.02)
        self.http_port = self._server.servers[0].sockets[0].getsockname()[1]
        self._serving = serving

    async def _await_catch_up(self, begin: dict[int, int], end: dict[int, int]) -> None:
        async with admin(self.settings.kafka, f"agent-{self.settings.cluster_id}-catchup") as client:
            while lagging := await self._lagging(client, begin, end):
                self.log.debug("catching up", partitions=lagging)
                await asyncio.sleep(self.settings.readiness_poll_s)
        self.readiness.caught_up = True
        if not self.readiness.synced:
            self.log.info("caught up with commands: waiting for the control plane's sync marker")
        await self._become_ready()

    async def _become_ready(self) -> None:
        """Answer checks once caught up and synced (called when either happens; acts once)."""
        if not self.readiness.ready or self.checker.ready:
            return
        self.checker.mark_ready(self.clock())
        self.log.info("caught up with commands and synced: ready", held=len(self.state.held))
        self._tasks.append(asyncio.create_task(self._expire_staging(), name="agent-staging-timeouts"))
        try:
            await self._heartbeat()  # tell the control plane now rather than at the next interval
        except Exception as exc:
            self.log.warning("heartbeat failed", error=repr(exc))

    async def _lagging(self, client: AIOKafkaAdminClient, begin: dict[int, int], end: dict[int, int]) -> dict[int, int]:
        try:
            return behind(begin, end, await committed_offsets(client, self.settings.group, COMMANDS.name))
        except KafkaError as exc:  # e.g. the group coordinator is still loading: not ready yet, ask again
            self.log.debug("committed offsets unavailable", error=repr(exc))
            return end

    # --- commands --------------------------------------------------------------------------------

    async def handle(
        self, command: RestrictCommand | DeltaCommand | LiftCommand | ClusterSynced, partition: int, offset: int
    ) -> None:
        """Apply one command durably (snapshot before the offset commits), then acknowledge it."""
        self._command_heard = time.monotonic()
        if command.cluster_id != self.settings.cluster_id:
            # The topic carries every cluster's commands: on the wire another cluster's are not an error.
            self.log.debug("command for another cluster ignored", cluster=command.cluster_id)
            return
        await RULES.handler(command)(self, command, partition, offset)

    async def refuse_unsigned(self, command: ClusterCommand, record: Any) -> bool:
        """Whether a command of this cluster fails its signature check (forged, altered, an unknown or retired
        key); the refusal is reported on the acks topic and nothing changes."""
        if self.keys is None or command.cluster_id != self.settings.cluster_id:
            return False
        try:
            verify_record(self.keys, record, self.clock())
        except SignatureRefused as exc:
            self.log.warning("command refused", reason=str(exc), event_id=command.event_id, type=command.type)
            if not isinstance(command, ClusterSynced):  # a marker names no directive: logged only
                refusal = Failed(command.directive_id, command.revision, f"{REFUSED}{exc}")
                await emit(self.acks, ACKS, self._ack_message(refusal, command.event_id), signer=self.signer)
            return True
        return False

    async def _on_command(
        self, command: RestrictCommand | DeltaCommand | LiftCommand, partition: int, offset: int
    ) -> None:
        """A restrict, delta or lift command of this cluster."""
        bind_message_ids(command.directive_id, command.event_id)
        if offset < self.offsets.get(partition, 0):
            # Redelivered after a restart (or replayed after lost group offsets): already in the snapshot.
            self.log.info("command already reflected in the snapshot: skipped", partition=partition, offset=offset)
            return
        outcome = on_command(self.state, command, self.settings.cluster_id, self.clock())
        if outcome.touched or outcome.held_changed or outcome.received:
            self._persist(command.directive_id, outcome, partition, offset)
        for ack in outcome.acks:
            await emit(self.acks, ACKS, self._ack_message(ack, ack.cause or command.event_id), signer=self.signer)

    async def on_synced(self, marker: ClusterSynced, partition: int | None, offset: int | None) -> None:
        """Everything in force for this cluster was sent before the marker, so it is applied: record that."""
        bind_message_ids(None, marker.event_id)
        if not self.readiness.syncs(marker.cluster_id):
            return
        self.store.record_synced(marker.event_id, partition, offset)  # durable before it counts
        if partition is not None and offset is not None:
            self.offsets[partition] = offset + 1
        self.readiness.synced = True
        self.log.info("synced with the control plane", marker=marker.event_id, held=len(self.state.held))
        await self._become_ready()

    async def _expire_staging(self) -> None:
        """Every second at most: report revisions whose chunks did not all come in time, and fold revisions
        applied from their chunks into plain sets in the snapshot (off the path to their acks)."""
        timeout = timedelta(seconds=self.settings.chunk_timeout_s)
        while True:
            await asyncio.sleep(min(1.0, self.settings.chunk_timeout_s / 4))
            try:
                await self.expire_staging(timeout)
                quiet = time.monotonic() - self._command_heard >= self.settings.fold_after_quiet_s
                if quiet:
                    self.store.fold(self.state)
            except Exception as exc:  # a broker or disk hiccup: the next pass tries again
                self.log.warning("staging housekeeping failed", error=repr(exc))

    async def expire_staging(self, timeout: timedelta) -> None:
        """Discard revisions whose missing chunks did not come in time and report each failure once."""
        for directive, outcome in expire_staging(self.state, self.clock(), timeout).items():
            self._persist(directive, outcome, None, None)
            for ack in outcome.acks:
                await emit(self.acks, ACKS, self._ack_message(ack, ack.cause), signer=self.signer)

    def _persist(self, directive: str, outcome: Outcome, partition: int | None, offset: int | None) -> None:
        try:
            self.store.record(self.state, directive, outcome, partition, offset)
        except Exception:
            # Memory must never run ahead of the store: fall back to what is durable, let the command retry.
            self.state, self.offsets = self.store.load()
            self.checker.replace(self.state.held)
            raise
        if partition is not None and offset is not None:
            self.offsets[partition] = offset + 1
        if outcome.held_changed:
            self.checker.replace(self.state.held)

    def _ack_message(self, ack: Applied | Failed, causation: str | None) -> CommandApplied | CommandFailed:
        common = {
            **envelope(SERVICE, correlation_id=ack.directive_id, causation_id=causation),
            "cluster_id": self.settings.cluster_id,
            "directive_id": ack.directive_id,
            "revision": ack.revision,
        }
        if isinstance(ack, Failed):
            self.log.warning("command rejected", reason=ack.reason)
            return CommandFailed(reason=ack.reason, **common)
        return CommandApplied(action=ack.action, digest=ack.digest, seq=ack.seq, **common)

    # --- heartbeats and state --------------------------------------------------------------------

    async def _heartbeats(self) -> None:
        while True:
            try:
                await self._heartbeat()
            except Exception as exc:  # a missed heartbeat is not fatal; the next one may get through
                self.log.warning("heartbeat failed", error=repr(exc))
            await asyncio.sleep(self.settings.heartbeat_interval_s)

    async def _heartbeat(self) -> None:
        held = {d: HeldDirective(revision=h.revision, digest=h.digest) for d, h in self.state.held.items()}
        await emit(
            self.acks,
            ACKS,
            AgentHeartbeat(
                **envelope(SERVICE),
                cluster_id=self.settings.cluster_id,
                region=self.settings.region,
                models=list(self.settings.models),
                held=held,
                offsets=dict(self.offsets),
                ready=self.checker.ready,
            ),
            signer=self.signer,
        )
        if self.consuming:
            # acks=all: the broker answered, and the command consumer is still fetching.
            self.checker.heard(self.clock())

    @property
    def consuming(self) -> bool:
        """Whether the commands consumer's fetch loop is running."""
        return bool(self._commands.running and any(not task.done() for task in self._commands.tasks))

    def describe(self) -> dict[str, Any]:
        """What /v1/state shows."""
        contact = self.checker.last_contact
        return {
            "cluster_id": self.settings.cluster_id,
            "region": self.settings.region,
            "models": list(self.settings.models),
            "ready": self.checker.ready,
            "synced": self.readiness.synced,
            "stale": self.checker.stale(self.clock()),
            "last_contact": contact.isoformat() if contact else None,
            "offsets": {str(p): o for p, o in sorted(self.offsets.items())},
            **self.state.describe(),
        }


RULES = Dispatch(
    {  # what the agent does with each message class on its commands partition
        RestrictCommand: AgentService._on_command,
        DeltaCommand: AgentService._on_command,
        LiftCommand: AgentService._on_command,
        ClusterSynced: AgentService.on_synced,
    }
)


def build(settings: AgentSettings, clock: Callable[[], datetime] = utc_now) -> AgentService:
    """The agent for one cluster, its store opened and its subscriber and publisher registered; nothing
    connected yet."""
    store = RestrictionStore(settings.state_dir / SERVICE / f"{settings.cluster_id}.sqlite3")
    return AgentService(settings, store, clock)


def specification(settings: AgentSettings | None = None) -> AsyncAPI:
    """The agent's AsyncAPI document (built over a throwaway store: it writes nothing)."""
    settings = settings or AgentSettings(cluster_id="example", auth=AuthSettings(mode="off"))
    with tempfile.TemporaryDirectory() as scratch:
        agent = build(settings.model_copy(update={"state_dir": Path(scratch), "signing": SigningSettings(mode="off")}))
        agent.store.close()
    return AsyncAPI(
        agent.broker,
        title="Countermand agent",
        version="1.0.0",
        description="Applies its cluster's restrict/delta/lift commands, acks them, answers checks.",
    )
