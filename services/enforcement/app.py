"""Composition root of the enforcement service: broker, subscriber, publishers, store and deadline loop."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import structlog
import uvicorn
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.specification import AsyncAPI
from pydantic import Field

from services.enforcement.acknowledgements import Acknowledgements
from services.enforcement.command_sender import CommandSender
from services.enforcement.coordinator import Coordinator
from services.enforcement.deadlines import Deadlines
from services.enforcement.deltas import Deltas
from services.enforcement.measures import export_state, observe_outcome
from services.enforcement.outcome import Outcome
from services.enforcement.replicas import Replicas
from services.enforcement.set_copies import SetCopies
from services.enforcement.settings import REPLICA_LAPSE_S, EnforcementSettings
from services.enforcement.state import EnforcementState
from services.enforcement.store import REGENERATED, EnforcementStore, Queued
from services.enforcement.targeting import Targeting
from services.enforcement.tracking import Backoff
from shared.contracts.catalogue import ACKS, COMMANDS, ENFORCEMENT, IMPACT, SETS
from shared.contracts.envelope import utc_now
from shared.contracts.impact import AffectedSetChunk, AffectedSetDelta, AssessmentKey, ImpactAssessed
from shared.contracts.serving import REFUSED, AgentHeartbeat, CommandApplied, CommandFailed
from shared.contracts.set_copies import CONTENT_TYPE
from shared.runtime.broker import consumer_options, declare_publisher, make_broker
from shared.runtime.dispatch import Dispatch
from shared.runtime.health import ConsumerWatch, LagWatch
from shared.runtime.http import health_app, http_server
from shared.runtime.logging import bind_message_ids
from shared.runtime.record_signing import (
    SigningSettings,
    publish_signed,
    record_signer,
    sender_keys,
    trusted_keys,
    verify_record,
)
from shared.runtime.service import cancel_tasks
from shared.runtime.signing import KeySet, Signer
from shared.runtime.topics import partition_for

SERVICE = "enforcement"
GROUP = "countermand-enforcement"
PUBLISH_WINDOW = 8  # messages handed to the producer before waiting for their acks
COPY_REFUSED = f"{REFUSED}set copy"  # how an agent refuses a restriction whose referenced set copy it cannot use

Inbound = Annotated[
    ImpactAssessed | AffectedSetChunk | AffectedSetDelta | CommandApplied | CommandFailed | AgentHeartbeat,
    Field(discriminator="type"),
]
IMPACT_TYPES = {"ImpactAssessed", "AffectedSetChunk", "AffectedSetDelta"}

RULES: Dispatch[Outcome] = Dispatch(
    {  # which rule of the core each inbound message class is for
        ImpactAssessed: Coordinator.on_assessed,
        AffectedSetChunk: Coordinator.on_chunk,
        AffectedSetDelta: Coordinator.on_delta,
        CommandApplied: Coordinator.on_applied,
        CommandFailed: Coordinator.on_failed,
        AgentHeartbeat: Coordinator.on_heartbeat,
    }
)


@dataclass
class EnforcementService:
    """The running service: one consumer on impact and acks, a deadline loop, an outbox publisher.

    Its parts (broker, publishers, store, core) come from build(); start() loads the core from the store.
    """

    settings: EnforcementSettings
    broker: KafkaBroker
    watch: ConsumerWatch
    commands: Any
    status: Any
    store: EnforcementStore
    core: Coordinator
    sets: Any = None  # the publisher of set copies (serving.sets.v1)
    copies: SetCopies | None = None  # set by build(): each set published once, referenced by every command
    clock: Callable[[], datetime] = utc_now
    http: Any = None
    signer: Signer | None = None  # signs every command (agents apply only what enforcement signed)
    keys: KeySet | None = None  # whose assessments enforcement acts on (impact's)
    agent_keys: KeySet | None = None  # whose acks and heartbeats it counts: each cluster's agent's, by `sub`
    log: Any = field(default_factory=lambda: structlog.get_logger(service=SERVICE))
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _ticker: asyncio.Task | None = None
    _lag: asyncio.Task | None = None
    _resend: bool = False  # restrict commands failed to publish: re-send unapplied restrictions
    _backlog: bool = True  # the outbox may hold entries not yet published (after a crash or a failed send)
    _in_flight: set[asyncio.Future] = field(default_factory=set)  # status events handed to the producer, unacked
    _impact_heard: float = 0.0  # monotonic time of the last impact message (assessment, chunk or delta)
    heartbeats: dict[str, float] = field(default_factory=dict)  # cluster -> monotonic time of its last heartbeat
    drifted_since: dict[str, float] = field(default_factory=dict)  # cluster -> when /metrics first saw it drifted

    async def start(self) -> None:
        grace = timedelta(seconds=self.settings.heartbeat_grace_s)
        self.core.hold_until = self.clock() + grace if grace else None
        self.store.load(self.core)
        assert self.copies is not None
        self.copies.placed.update(self.store.placed())
        await self.broker.start()
        async with self._lock:
            await self._commit(self.core.recover(self.clock()))  # and what the outbox kept from before a crash
        self._lag = asyncio.create_task(LagWatch(self.settings.kafka, GROUP, (IMPACT, ACKS), self.watch).run())
        self._ticker = asyncio.create_task(self._tick_forever())

    async def stop(self) -> None:
        await cancel_tasks(self._ticker, self._lag)
        if self._in_flight:  # what the broker acknowledges now need not be published again after a restart
            await asyncio.wait(list(self._in_flight), timeout=5)
        await self.broker.stop()
        self.store.close()

    def http_server(self) -> uvicorn.Server:
        """The health endpoints' server (the run loop serves it)."""
        return http_server(self.http, self.settings.http_host, self.settings.http_port)

    async def handle(self, message: Inbound) -> None:
        """Apply one inbound message: decide, persist with its outbox, publish (then Kafka commits)."""
        bind_message_ids(getattr(message, "directive_id", None), message.event_id)
        if message.type in IMPACT_TYPES:
            self._impact_heard = time.monotonic()
        elif isinstance(message, AgentHeartbeat):
            self.heartbeats[message.cluster_id] = time.monotonic()
        async with self._lock:
            if isinstance(message, CommandFailed) and message.reason.startswith(COPY_REFUSED):
                self._drop_copies({AssessmentKey(message.directive_id, message.revision, "restrict")})
            await self._commit(RULES.handler(message)(self.core, message, self.clock()))

    async def tick(self) -> None:
        """One pass of the deadline and re-send rules; then write the sets of rollouts started since."""
        async with self._lock:
            if self._resend:
                self._resend = False
                await self._commit(self.core.recover(self.clock()))
            await self._commit(self.core.tick(self.clock()))
            if time.monotonic() - self._impact_heard >= self.settings.fold_after_quiet_s:
                self.store.fold(self.core)  # not while an assessment streams in: its CPU and disk go there

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.deadline_check_interval_s)
            try:
                await self.tick()
            except Exception:  # a broker hiccup: the outbox keeps the messages, try again next tick
                self.log.exception("deadline check failed")

    async def _commit(self, outcome: Outcome) -> None:
        for note in outcome.notes:
            self.log.warning(note)
        entries: list = []
        if (
            outcome.commands
            or outcome.events
            or outcome.rollouts
            or outcome.sets
            or outcome.deltas
            or outcome.clusters
            or outcome.parts
            or outcome.assembled
        ):
            entries = self.store.save(outcome, self.core)
            observe_outcome(outcome, self.core)
            self._forget_copies(outcome)
        if self._backlog:  # an earlier publish failed: its entries go first, read back from the outbox
            entries = self.store.outbox()
        drafts = [c for c in outcome.commands if c.type in REGENERATED]
        if (
            entries
            and not drafts
            and not outcome.markers
            and not self._backlog
            and all(entry.topic is ENFORCEMENT for entry in entries)
        ):
            await self._publish_events(entries)  # an ack's status change: the next message need not wait
            return
        try:
            assert self.copies is not None
            direct = [Queued(None, COMMANDS, await self.copies.command(draft)) for draft in drafts]
            await self._publish(direct + entries)
        except Exception:
            self._resend = self._resend or bool(drafts)  # not in the outbox: the next tick sends them again
            raise
        await self._mark_synced(outcome.markers)

    def _forget_copies(self, outcome: Outcome) -> None:
        self._drop_copies({k for k in outcome.rollouts if k in self.core.rollouts and not self.core.rollouts[k].active})

    def _drop_copies(self, keys: set[AssessmentKey]) -> None:
        """Placements no longer to be referenced: a retired rollout's, or a copy an agent could not use (records
        deleted from the topic, say); the next send of such a rollout publishes a fresh copy."""
        if keys and self.copies is not None:
            self.copies.forget(keys)
            self.store.forget_copies(keys)

    async def publish_copy(self, key: bytes, values: list[bytes]) -> tuple[int, list[int]]:
        """Produce one set copy's chunks (binary, each signed over topic, key and value) on the partition its key
        names; returns the partition and each chunk's offset once the broker acknowledged them all."""
        partition = partition_for(SETS, key)
        futures = []
        for value in values:
            headers = {"content-type": CONTENT_TYPE}
            if self.signer is not None:
                headers.update(self.signer.headers(SETS.name, key, value))
            futures.append(
                await self.sets.publish(value, key=key, partition=partition, headers=headers, no_confirm=True)
            )
        written = await asyncio.gather(*futures)
        return partition, [metadata.offset for metadata in written]

    async def _mark_synced(self, markers: list) -> None:
        """Publish ClusterSynced markers once every command before them was acknowledged by the broker.

        _publish returned, so the commands this outcome caused (and any outbox backlog) are on the topic,
        ahead of the marker in the cluster's partition. While restrictions wait for a re-send the marker is
        held back: the agent's next not-ready heartbeat asks again. Markers are not persisted for the same
        reason.
        """
        if markers and self._resend:
            self.log.info("restrictions await a re-send: sync markers held back", clusters=len(markers))
            return
        if markers:
            await self._publish([Queued(None, COMMANDS, marker) for marker in markers])

    async def _publish(self, entries: list[Queued]) -> None:
        """Hand entries to the producer a window at a time and wait for the window's broker acks.

        A window in flight lets the producer batch a large restriction's chunks instead of one round
        trip per chunk, while keeping little unacknowledged; per partition the idempotent producer
        keeps order. What was not acknowledged stays in the outbox and is sent again (agents and
        readers are idempotent on event_id).
        """
        self._backlog = True
        for start in range(0, len(entries), PUBLISH_WINDOW):
            window = entries[start : start + PUBLISH_WINDOW]
            await asyncio.gather(*[await self._send(entry) for entry in window])
            self.store.published([entry.id for entry in window if entry.id is not None])
        self._backlog = False

    async def _publish_events(self, entries: list[Queued]) -> None:
        """Hand status events (already in the outbox) to the producer without waiting for the broker.

        Nothing waits on them (unlike commands, which must be on the topic before a ClusterSynced), and
        the outbox holds them until acknowledged: a failure marks the backlog, so the next message
        re-publishes what the outbox still has. Per partition the producer keeps their order.
        """
        futures = [await self._send(entry) for entry in entries]
        ids = [entry.id for entry in entries if entry.id is not None]
        sent = asyncio.gather(*futures)

        def confirmed(done: asyncio.Future) -> None:
            self._in_flight.discard(done)
            if done.cancelled() or done.exception() is not None:
                self._backlog = True
                self.log.warning(
                    "status events not acknowledged by the broker: re-published from the outbox",
                    error=repr(None if done.cancelled() else done.exception()),
                )
            else:
                self.store.published(ids)

        self._in_flight.add(sent)
        sent.add_done_callback(confirmed)

    async def _send(self, entry: Queued) -> asyncio.Future:
        """Hand one message to the producer (an outbox entry as the JSON the outbox holds); a command is signed
        over the exact bytes produced, serialised once (a chunk's ~1.5 MB: one Ed25519 signature, ~ms)."""
        publisher = self.commands if entry.topic is COMMANDS else self.status
        value = None if entry.body is None else entry.body.encode()
        signer = self.signer if entry.topic is COMMANDS else None
        return await publish_signed(publisher, entry.topic, entry.message, signer, value=value, no_confirm=True)


def build(settings: EnforcementSettings | None = None, clock: Callable[[], datetime] = utc_now) -> EnforcementService:
    """The enforcement service wired from settings, its store opened; nothing connects until start()."""
    settings = settings or EnforcementSettings()
    watch = ConsumerWatch(SERVICE)
    broker = make_broker(settings, SERVICE, watch=watch)
    service = EnforcementService(
        settings,
        broker,
        watch,
        commands=declare_publisher(broker, COMMANDS, "Restrict, delta and lift commands per cluster."),
        status=declare_publisher(broker, ENFORCEMENT, "Enforcement progress, verdicts and overdue."),
        store=EnforcementStore(settings.state_dir / SERVICE),
        core=build_core(
            Backoff(base_s=settings.resend_backoff_base_s, cap_s=settings.resend_backoff_cap_s),
            replica_lapse_s=settings.replica_lapse_s,
        ),
        sets=declare_publisher(broker, SETS, "One binary copy of each affected set per revision and version."),
        clock=clock,
        signer=record_signer(settings.signing, SERVICE),
        keys=trusted_keys(settings.signing, SERVICE),
        agent_keys=sender_keys(settings.signing, settings.agent_keys_file, "COUNTERMAND_ENFORCEMENT_AGENT_KEYS_FILE"),
    )
    service.copies = SetCopies(
        service.core.state,
        service.publish_copy,
        ids_per_chunk=settings.chunk_ids,
        max_bytes=settings.chunk_bytes,
        on_placed=service.store.place,
    )
    service.http = health_app(
        SERVICE,
        lambda: service._ticker is not None,
        watch,
        refresh=lambda: export_state(service.core, service.heartbeats, time.monotonic(), service.drifted_since),
    )
    _subscribe(broker, service)
    return service


def build_core(
    backoff: Backoff, *, hold_until: datetime | None = None, replica_lapse_s: float = REPLICA_LAPSE_S
) -> Coordinator:
    """The pure core wired from its parts over one state; every part sends commands through one sender."""
    state = EnforcementState()
    sender = CommandSender(state)
    deltas = Deltas(state, sender)
    targeting = Targeting(state, sender, deltas, hold_until=hold_until)
    replicas = Replicas(state, timedelta(seconds=replica_lapse_s))
    return Coordinator(
        state=state,
        targeting=targeting,
        deltas=deltas,
        acks=Acknowledgements(state, targeting, sender, backoff, replicas),
        deadlines=Deadlines(state, targeting, sender, backoff, replicas),
    )


def _subscribe(broker: KafkaBroker, service: EnforcementService) -> None:
    @broker.subscriber(
        IMPACT.name,
        ACKS.name,
        **consumer_options(GROUP),
        title="impact-and-acks:consume",
        description="Impact assessments, affected-set chunks and deltas; agent acks and heartbeats.",
    )
    async def handle(message: Inbound, msg: KafkaMessage) -> None:
        # Refused (unsigned, unknown or retired key, altered, another cluster's key): dead-lettered, nothing counts.
        if msg.raw_message.topic == IMPACT.name:
            verify_record(service.keys, msg.raw_message)
        else:  # an agent's ack or heartbeat: signed by the key of the cluster it speaks for
            verify_record(service.agent_keys, msg.raw_message, subject=message.cluster_id)
        await service.handle(message)


def specification(settings: EnforcementSettings | None = None) -> AsyncAPI:
    """The AsyncAPI document of the enforcement service (built over a throwaway store: it writes nothing)."""
    settings = settings or EnforcementSettings()
    with tempfile.TemporaryDirectory() as scratch:
        service = build(
            settings.model_copy(update={"state_dir": Path(scratch), "signing": SigningSettings(mode="off")})
        )
        service.store.close()
    return AsyncAPI(
        service.broker,
        title="Countermand enforcement",
        version="1.0.0",
        description="Turns impact assessments into cluster commands and tracks acknowledgements.",
    )
