"""The user view kept current: resumed from its snapshot, fed registry batches, snapshotted on a cadence.

Changed user ids go to a callback (the assessor's deltas) under the one lock every writer of impact holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import structlog
from faststream.kafka.annotations import KafkaMessage

from services.impact.registry_view import RegistryView
from services.impact.settings import ImpactSettings
from services.impact.view_snapshot import Snapshot, SnapshotUnusable, ViewSnapshots
from shared.contracts.catalogue import USERS
from shared.runtime.faststream_fence import rewind, seek
from shared.runtime.kafka import OffsetProbe

log = structlog.get_logger(service="impact")


@dataclass
class ViewFollower:
    """The registry view of one instance and the offsets it reflects."""

    settings: ImpactSettings
    snapshots: ViewSnapshots
    lock: asyncio.Lock  # one writer at a time: view updates, assessments, deltas
    changed: Callable[[np.ndarray, frozenset[str]], Awaitable[None]]  # user ids whose record changed and the
    # producers of those records, under the lock
    bury: Callable[[Any, Exception], Awaitable[None]]  # a record the view refused
    view: RegistryView = field(default_factory=RegistryView)
    probe: OffsetProbe | None = None
    resumed_from: dict[int, int] | None = None  # the snapshot's offsets, when the view came from one
    records_read: int = 0  # registry records applied since start: after a snapshot, fewer than the topic holds
    _since_snapshot: int = 0

    async def resume(self) -> None:
        """Start the offset probe and, on a thread meanwhile (reading a large snapshot is mostly I/O and copies that
        release the GIL), load the snapshot; keep it if it fits the registry, else the view starts empty."""
        assert self.probe is not None, "view follower without its offset probe"
        loading = asyncio.ensure_future(asyncio.to_thread(self._load))
        try:
            await self.probe.start()
            ends = await self.registry_ends()
        finally:
            found = await loading  # also when the probe failed: no load left running behind a failed start
        beyond = {p: o for p, o in found.offsets.items() if o > ends.get(p, 0)} if isinstance(found, Snapshot) else {}
        if beyond:
            found = SnapshotUnusable(f"offsets {beyond} are beyond the registry's end {ends}")
        if isinstance(found, SnapshotUnusable):
            log.warning(
                "no usable snapshot of the user view; reading the registry from the beginning", reason=str(found)
            )
            return
        self.view = RegistryView(found.population, dict(found.offsets))
        self.resumed_from = dict(found.offsets)
        log.info("user view resumed from snapshot", offsets=self.resumed_from, users=found.population.users)

    def _load(self) -> Snapshot | SnapshotUnusable:
        try:
            return self.snapshots.load()
        except SnapshotUnusable as exc:
            return exc

    def seek(self, subscriber: Any) -> None:
        """Start the registry subscriber at the snapshot's offsets instead of the beginning."""
        resumed = self.resumed_from or {}
        seek(subscriber, {(USERS.name, partition): offset for partition, offset in resumed.items()})

    async def on_batch(self, msg: KafkaMessage) -> None:
        """A batch of registry records: apply the good ones, report changes, bury the bad ones."""
        records = msg.raw_message
        try:
            async with self.lock:
                applied = self._apply(records)
                await self.changed(applied.changed, applied.producers)
                for record, error in applied.rejected:
                    await self.bury(record, error)
                every = self.settings.snapshot_every_records
                if every and self._since_snapshot >= every:
                    await self._write_snapshot()
        except Exception:
            rewind(msg, records)  # nothing is committed here: refetch the batch instead of losing it
            raise

    def _apply(self, records: tuple) -> Any:
        # Records the snapshot already holds are dropped (a fetch may start before the seek to its offsets).
        resumed = self.resumed_from or {}
        fresh = [r for r in records if r.offset >= resumed.get(r.partition, 0)]
        self.records_read += len(fresh)
        self._since_snapshot += len(fresh)
        return self.view.apply(fresh)

    async def snapshot(self) -> None:
        """Write the user view and the offsets it reflects (a failure is logged; the next one may succeed)."""
        async with self.lock:
            await self._write_snapshot()

    async def _write_snapshot(self) -> None:
        offsets, columns = dict(self.view.offsets), self.view.population.columns()
        try:
            await asyncio.to_thread(self.snapshots.write, columns, offsets)
        except OSError as exc:
            log.error("snapshot of the user view failed", path=str(self.snapshots.path), error=str(exc))
            return
        self._since_snapshot = 0
        log.info("user view snapshot written", path=str(self.snapshots.path), offsets=offsets)

    async def snapshot_every(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            await self.snapshot()

    async def registry_ends(self) -> dict[int, int]:
        assert self.probe is not None, "view follower not started"
        return await self.probe.end_offsets(USERS)

    def offsets(self) -> dict[int, int]:
        """The next registry offset the view reflects, for every partition (0: nothing read)."""
        return {p: self.view.offsets.get(p, 0) for p in range(USERS.partitions)}

    async def catch_up(self) -> None:
        """Wait (bounded) until the view reflects the registry's end offsets as of now."""
        ends = await self.registry_ends()
        deadline = asyncio.get_running_loop().time() + self.settings.catch_up_timeout_s
        while not self.view.reached(ends):
            if asyncio.get_running_loop().time() > deadline:
                log.warning(
                    "user view behind the registry after the catch-up timeout", ends=ends, offsets=self.view.offsets
                )
                return
            await asyncio.sleep(0.05)
