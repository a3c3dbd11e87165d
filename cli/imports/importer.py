"""One import from start to end: read and validate the whole file, then (unless a dry run) produce upserts,
then tombstones, encoding the next slice in a worker thread while the current one is sent; a large import's
upserts are shared with a second process (cores)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from cli.imports import cores, producing
from cli.imports.encoding import encode
from cli.imports.reader import read
from cli.imports.validation import Checked, check
from shared.contracts.catalogue import USERS, Topic
from shared.runtime.settings import KafkaSettings

SLICE = 200_000  # upserts encoded at a time: bounded memory, steady progress
Progress = Callable[[int], None]  # records acknowledged by the broker so far


@dataclass
class Plan:
    """What an import will do: the checked file and, in snapshot mode, the ids to tombstone as absent."""

    path: Path
    kind: str
    rows: int  # data rows in the file, malformed ones included
    checked: Checked
    absent: np.ndarray  # snapshot mode: ids on the topic and not in the file
    occurred_at: datetime

    @property
    def records(self) -> int:
        return len(self.checked.upserts) + len(self.checked.deletions) + len(self.absent)


def as_of(path: Path, given: datetime | None) -> datetime:
    """When the records were true: the given time, else the file's modification time (whole seconds, UTC),
    so that importing the same file again writes the same values."""
    if given is not None:
        return given if given.tzinfo else given.replace(tzinfo=UTC)
    return datetime.fromtimestamp(int(path.stat().st_mtime), UTC)


def prepare(path: Path, mapping: Mapping[str, str], occurred_at: datetime) -> Plan:
    """Read and validate the file (no Kafka): ImportFileError when it cannot be imported at all."""
    raw = read(path, mapping)
    checked = check(raw)
    rows = raw.table.num_rows + sum(1 for error in raw.errors if error.field == "line")
    return Plan(path, raw.kind, rows, checked, np.array([], dtype=np.int64), occurred_at)


async def with_absent(plan: Plan, settings: KafkaSettings, topic: Topic = USERS) -> Plan:
    """Snapshot mode: the plan with every id on the topic that the file does not have."""
    on_topic = await producing.current_ids(settings, topic)
    plan.absent = on_topic[~np.isin(on_topic, plan.checked.ids_in_file)]
    return plan


async def run(
    plan: Plan,
    settings: KafkaSettings,
    progress: Progress | None = None,
    topic: Topic = USERS,
    processes: int | None = None,
) -> int:
    """Produce the plan's upserts, deletions and snapshot tombstones; returns the records acknowledged.
    `processes`: 1 or 2 producer processes (default: 2 for a large import, see cores)."""
    done = 0
    second: cores.SecondProducer | None = None

    def acknowledged(count: int) -> None:
        nonlocal done
        done += count + (second.acknowledged() if second else 0)
        if progress:
            progress(done)

    upserts, tombstones = plan.checked.upserts, (plan.checked.deletions, plan.absent)
    if (processes or cores.processes_for(len(upserts))) > 1:
        upserts, theirs = cores.halves(upserts, topic.partitions)
        second = cores.SecondProducer(lambda report: _produce(theirs, (), plan.occurred_at, settings, topic, report))
        second.start()
    try:
        if second is None:
            await _produce(upserts, tombstones, plan.occurred_at, settings, topic, acknowledged)
        else:  # tombstones once every upsert is in, as with one process
            await _produce(upserts, (), plan.occurred_at, settings, topic, acknowledged)
            acknowledged(await second.finish())
            if any(len(ids) for ids in tombstones):
                await _produce(upserts.slice(0, 0), tombstones, plan.occurred_at, settings, topic, acknowledged)
    finally:
        if second:
            second.stop()
    return done


async def _produce(
    upserts: pa.Table,
    tombstones: Sequence[np.ndarray],
    occurred_at: datetime,
    settings: KafkaSettings,
    topic: Topic,
    acknowledged: Progress,
) -> None:
    async with producing.users_producer(settings) as producer:
        pending: list[tuple[list[asyncio.Future], int]] = []
        batch_size = producing.batch_bytes(settings)
        async for records in _slices(upserts, tombstones, occurred_at, topic.partitions, batch_size):
            count = sum(len(part.keys) for part in records)
            pending.append((await producing.send(producer, records, topic), count))
            while len(pending) > 1:  # wait for a slice only once the next one is queued
                futures, count = pending.pop(0)
                await asyncio.gather(*futures)
                acknowledged(count)
        for futures, count in pending:
            await asyncio.gather(*futures)
            acknowledged(count)


async def _slices(
    upserts: pa.Table, tombstones: Sequence[np.ndarray], occurred_at: datetime, partitions: int, batch_size: int
) -> AsyncIterator[list[producing.PartitionRecords]]:
    """Each slice's records by partition: upserts (the next slice encoded in a worker thread while this one is
    sent), then tombstones."""

    def encoded(start: int) -> list[producing.PartitionRecords]:
        slice_ = encode(upserts.slice(start, SLICE))
        return producing.by_partition(slice_.keys, slice_.bodies, occurred_at, partitions, batch_size)

    starts = range(0, len(upserts), SLICE)
    ahead: asyncio.Future | None = None
    for start in starts:
        current = await (ahead or asyncio.to_thread(encoded, start))
        following = start + SLICE
        ahead = asyncio.ensure_future(asyncio.to_thread(encoded, following)) if following < starts.stop else None
        yield current
    for ids in tombstones:
        for start in range(0, len(ids), SLICE):
            yield producing.by_partition(_keys(ids[start : start + SLICE]), None, occurred_at, partitions, batch_size)


def _keys(ids: np.ndarray) -> pa.Array:
    return pa.array(ids, pa.int64()).cast(pa.string()).cast(pa.binary())
