"""Composition root of the impact service: the registry view, the directive consumer and their publishers."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import structlog
import uvicorn
from faststream.kafka.annotations import KafkaMessage
from faststream.specification import AsyncAPI

from services.impact import view_snapshot as snapshots
from services.impact.affected import assess, breakdown
from services.impact.api import create_api
from services.impact.directives import Delta, Directives
from services.impact.losing import losing_by_model
from services.impact.messages import Cause, assessment, delta_message
from services.impact.recovery import ImpactReplay
from services.impact.registry_view import RegistryView
from services.impact.settings import ImpactSettings
from services.impact.user_columns import Population
from shared.contracts.bitmaps import bitmap_ids, union
from shared.contracts.catalogue import DIRECTIVES, IMPACT, USERS, dead_letter_topic
from shared.contracts.directives import DirectiveEvent, DirectiveIssued, DirectiveLifted
from shared.contracts.envelope import utc_now
from shared.runtime.broker import consumer_options, declare_publisher, emit, emit_all, make_broker, view_subscriber
from shared.runtime.deadletters import write_dead_letter
from shared.runtime.dispatch import Dispatch
from shared.runtime.faststream_fence import rewind, seek
from shared.runtime.health import ConsumerWatch, LagWatch
from shared.runtime.kafka import OffsetProbe, records_to_end
from shared.runtime.logging import bind_message_ids
from shared.runtime.service import cancel_tasks

SERVICE = "impact"
GROUP = "countermand-impact"
DEAD_LETTERS = dead_letter_topic(SERVICE)
log = structlog.get_logger(service=SERVICE)


class ImpactService:
    """The impact service: owns the user view, the active directives and the order of what it publishes."""

    def __init__(self, settings: ImpactSettings) -> None:
        self.settings = settings
        self.view = RegistryView()
        self.directives = Directives()
        self.loaded = False  # deltas start once the view has caught up after start (see reconcile)
        self._lock = asyncio.Lock()  # one writer at a time: view updates, assessments, deltas
        self._unsent: list[Delta] = []
        self._probe: OffsetProbe | None = None
        self.resumed_from: dict[int, int] | None = None  # the snapshot's offsets, when the view came from one
        self.records_read = 0  # registry records applied since start: after a snapshot, fewer than the topic holds
        self._since_snapshot = 0
        self._snapshotter: asyncio.Task | None = None
        self._lag: asyncio.Task | None = None
        self._started = False
        self.watch = ConsumerWatch(SERVICE)
        self.broker = make_broker(settings, SERVICE, watch=self.watch)
        self._impact = declare_publisher(self.broker, IMPACT, "Assessments, affected-set chunks and deltas.")
        self._dead = declare_publisher(self.broker, DEAD_LETTERS, "Registry records impact refused.")
        self._subscribe()
        self.http = create_api(self)

    @property
    def population(self) -> Population:
        return self.view.population

    def _subscribe(self) -> None:
        # Every impact instance needs the WHOLE registry to evaluate a selector, so the view is not a
        # consumer group (a group would split the partitions between instances): each instance assigns
        # itself every partition and reads from its snapshot's offsets (or the beginning); nothing is committed.
        self._view_subscriber = view_subscriber(
            self.broker,
            USERS,
            batch=True,
            max_records=self.settings.registry_batch,
            batch_timeout_ms=self.settings.registry_wait_ms,
            title=f"{USERS.name}:view",
            description="The user registry, materialised as columns.",
        )
        self._view_subscriber(self.on_users)
        # A plain consumer group: committed offsets mean "assessed and published". What a restarted
        # instance needs of older directives it rebuilds from compliance.impact.v1 (see recovery.py).
        self.broker.subscriber(
            DIRECTIVES.name,
            **consumer_options(GROUP),
            title=f"{DIRECTIVES.name}:assess",
            description="Directives to assess and lift.",
        )(self.on_directive)

    async def start(self) -> None:
        """Rebuild directive state from the impact topic, load the view, then reconcile what changed meanwhile."""
        await self._recover()
        self._probe = OffsetProbe(self.settings.kafka, f"impact-probe-{self.settings.instance}")
        await self._probe.start()
        await self._resume()
        await self.broker.start()
        self._started = True
        self._seek_view()
        await self._reconcile()
        if self.settings.snapshot_interval_s:
            self._snapshotter = asyncio.create_task(self._snapshot_every(self.settings.snapshot_interval_s))
        self._lag = asyncio.create_task(LagWatch(self.settings.kafka, GROUP, (DIRECTIVES,), self.watch).run())

    async def stop(self) -> None:
        await cancel_tasks(self._snapshotter, self._lag)  # waits, so no snapshot write is cut off half way
        await self.broker.stop()
        if self._started and self.settings.snapshot_on_stop:
            await self.snapshot()
        if self._probe is not None:
            await self._probe.stop()

    def http_server(self) -> uvicorn.Server:
        """A uvicorn server for the HTTP API on the configured address (run it with `await serve()`)."""
        config = uvicorn.Config(
            self.http,
            host=self.settings.http_host,
            port=self.settings.http_port,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
        return uvicorn.Server(config)

    async def snapshot(self) -> None:
        """Write the user view and the offsets it reflects (a failure is logged; the next one may succeed)."""
        async with self._lock:
            await self._write_snapshot()

    async def _write_snapshot(self) -> None:
        path = snapshots.snapshot_path(self.settings.state_dir)
        offsets, columns = dict(self.view.offsets), self.view.population.columns()
        try:
            await asyncio.to_thread(snapshots.write, path, columns, offsets)
        except OSError as exc:
            log.error("snapshot of the user view failed", path=str(path), error=str(exc))
            return
        self._since_snapshot = 0
        log.info("user view snapshot written", path=str(path), offsets=offsets)

    async def _snapshot_every(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            await self.snapshot()

    async def _resume(self) -> None:
        """Load the snapshot if there is a usable one that fits the registry; else the view starts empty."""
        path = snapshots.snapshot_path(self.settings.state_dir)
        try:
            found = snapshots.load(path)
            ends = await self._registry_ends()
            beyond = {p: o for p, o in found.offsets.items() if o > ends.get(p, 0)}
            if beyond:
                raise snapshots.SnapshotUnusable(f"offsets {beyond} are beyond the registry's end {ends}")
        except snapshots.SnapshotUnusable as exc:
            log.warning("no usable snapshot of the user view; reading the registry from the beginning", reason=str(exc))
            return
        self.view = RegistryView(found.population, dict(found.offsets))
        self.resumed_from = dict(found.offsets)
        log.info("user view resumed from snapshot", offsets=self.resumed_from, users=found.population.users)

    def _seek_view(self) -> None:
        """Start the registry consumer at the snapshot's offsets instead of the beginning."""
        seek(
            self._view_subscriber,
            {(USERS.name, partition): offset for partition, offset in (self.resumed_from or {}).items()},
        )

    async def on_users(self, msg: KafkaMessage) -> None:
        """A batch of registry records: apply the good ones, dead-letter the bad ones, publish deltas."""
        records = msg.raw_message
        try:
            async with self._lock:
                fresh = self._unseen(records)
                applied = self.view.apply(fresh)
                self.records_read += len(fresh)
                self._since_snapshot += len(fresh)
                if self.loaded:
                    self._unsent.extend(self.directives.deltas(self.view.population, applied.changed))
                await self._flush_deltas()
                for record, error in applied.rejected:
                    await write_dead_letter(self._bury, record, SERVICE, error, self.watch)
                every = self.settings.snapshot_every_records
                if every and self._since_snapshot >= every:
                    await self._write_snapshot()
        except Exception:
            rewind(msg, records)  # nothing is committed here: refetch the batch instead of losing it
            raise

    async def _bury(self, letter: Any) -> None:
        await emit(self._dead, DEAD_LETTERS, letter)

    def _unseen(self, records: tuple) -> list:
        """Drop records the snapshot already holds (a fetch may start before the seek to its offsets)."""
        resumed = self.resumed_from or {}
        return [r for r in records if r.offset >= resumed.get(r.partition, 0)]

    async def on_directive(self, event: DirectiveEvent, msg: KafkaMessage) -> None:
        """A directive was issued, amended or lifted."""
        bind_message_ids(event.directive_id, event.event_id)
        await RULES.handler(event)(self, event)

    async def _issued(self, event: DirectiveIssued) -> None:
        if self.directives.is_assessed(event.directive_id, event.revision):
            log.info("revision already assessed, ignored", revision=event.revision)
            return
        await self._catch_up()
        async with self._lock:
            if self.directives.is_assessed(event.directive_id, event.revision):
                return
            affected = assess(self.view.population, event.scope)
            amendment = self.directives.amendment(event.directive_id, affected.by_model)
            cause = Cause(event.directive_id, event.revision, event.event_id, utc_now())
            await self._publish(
                assessment(
                    cause,
                    "restrict",
                    event.scope,
                    affected,
                    self._offsets(),
                    amendment=amendment,
                    losing=losing_by_model(self.population, affected.by_model),
                )
            )
            self.directives.activate(event.directive_id, event.revision, event.scope, affected.by_model)
            log.info(
                "directive assessed",
                revision=event.revision,
                users=affected.users,
                digest=affected.digest,
                amended_from=amendment.amended_from if amendment else None,
            )

    async def _lifted(self, event: DirectiveLifted) -> None:
        async with self._lock:
            active = self.directives.active.get(event.directive_id)
            if active is None or event.revision < active.revision:
                log.warning(
                    "lift of a directive not active (or of an older revision), ignored", revision=event.revision
                )
                return
            restored = breakdown(self.view.population, self.directives.restored(event.directive_id))
            cause = Cause(event.directive_id, active.revision, event.event_id, utc_now())
            losing = losing_by_model(self.population, restored.by_model)  # here: who regains a model they hold
            await self._publish(assessment(cause, "lift", active.scope, restored, self._offsets(), losing=losing))
            self.directives.lift(event.directive_id)
            log.info("directive lifted", restored=restored.users, digest=restored.digest)

    def _offsets(self) -> dict[int, int]:
        """The next registry offset the view reflects, for every partition (0: nothing read)."""
        return {p: self.view.offsets.get(p, 0) for p in range(USERS.partitions)}

    async def _publish(self, messages: list[Any]) -> None:
        await emit_all(self._impact, IMPACT, messages)  # the assessment first: per partition, order holds

    async def _flush_deltas(self) -> None:
        # Deltas are queued before the first publish so a failed publish is retried, never recomputed away.
        now = utc_now()
        while self._unsent:
            await emit(self._impact, IMPACT, delta_message(self._unsent[0], None, now))
            self._unsent.pop(0)

    async def _registry_ends(self) -> dict[int, int]:
        return await self._probe.end_offsets(USERS)

    async def _catch_up(self) -> None:
        """Wait (bounded) until the view reflects the registry's end offsets as of now."""
        ends = await self._registry_ends()
        deadline = asyncio.get_running_loop().time() + self.settings.catch_up_timeout_s
        while not self.view.reached(ends):
            if asyncio.get_running_loop().time() > deadline:
                log.warning(
                    "user view behind the registry after the catch-up timeout", ends=ends, offsets=self.view.offsets
                )
                return
            await asyncio.sleep(0.05)

    async def _reconcile(self) -> None:
        """After a restart: re-evaluate every user against the recovered directives and publish the differences."""
        await self._catch_up()
        async with self._lock:
            held = [d.sets[m] for d in self.directives.active.values() for m in d.sets]
            ids = _with_view(self.view.population.size, _ids_of(held))
            self._unsent.extend(self.directives.deltas(self.view.population, ids))
            self.loaded = True
            await self._flush_deltas()
        log.info(
            "user view loaded",
            users=self.view.population.users,
            offsets=self.view.offsets,
            active=len(self.directives.active),
            resumed_from=self.resumed_from,
            records_read=self.records_read,
        )

    async def _recover(self) -> None:
        replay = ImpactReplay()
        async for record in records_to_end(self.settings.kafka, IMPACT, f"impact-recovery-{self.settings.instance}"):
            _fold(replay, record)
        self.directives = replay.directives
        log.info("directives recovered from the impact topic", active=sorted(self.directives.active))


RULES = Dispatch({DirectiveIssued: ImpactService._issued, DirectiveLifted: ImpactService._lifted})


def _fold(replay: ImpactReplay, record: Any) -> None:
    try:
        replay.fold(IMPACT.adapter.validate_json(record.value))
    except ValueError as exc:
        log.warning("unreadable impact record skipped in recovery", offset=record.offset, error=str(exc))


def _ids_of(bitmaps: list) -> np.ndarray:
    return bitmap_ids(union(bitmaps)).astype(np.int64)


def _with_view(size: int, ids: np.ndarray) -> np.ndarray:
    """Every row of the view, then the (sorted) ids beyond it: np.union1d takes seconds on millions of ids."""
    return np.concatenate([np.arange(size), ids[ids >= size]])


def build(settings: ImpactSettings | None = None) -> ImpactService:
    """The impact service wired from settings; nothing connects until start()."""
    return ImpactService(settings or ImpactSettings())


def specification(settings: ImpactSettings | None = None) -> AsyncAPI:
    """The AsyncAPI document of the impact service."""
    return AsyncAPI(
        build(settings).broker,
        title="Countermand impact",
        version="1.0.0",
        description="Exact affected sets of directives, from a columnar view of the user registry.",
    )
