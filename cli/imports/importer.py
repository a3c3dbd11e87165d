"""One import from start to end: read and validate the whole file, then (unless a dry run) produce upserts,
then tombstones, encoding the next slice in a worker thread while the current one is sent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from cli.imports import producing
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


async def run(plan: Plan, settings: KafkaSettings, progress: Progress | None = None, topic: Topic = USERS) -> int:
    """Produce the plan's upserts, deletions and snapshot tombstones; returns the records acknowledged."""
    done = 0

    def acknowledged(count: int) -> None:
        nonlocal done
        done += count
        if progress:
            progress(done)

    async with producing.users_producer(settings) as producer:
        pending: list[tuple[list[asyncio.Future], int]] = []
        async for records in _slices(plan, topic, producing.batch_bytes(settings)):
            count = sum(len(part.keys) for part in records)
            pending.append((await producing.send(producer, records, topic), count))
            while len(pending) > 1:  # wait for a slice only once the next one is queued
                futures, count = pending.pop(0)
                await asyncio.gather(*futures)
                acknowledged(count)
        for futures, count in pending:
            await asyncio.gather(*futures)
            acknowledged(count)
    return done


async def _slices(plan: Plan, topic: Topic, batch_size: int) -> AsyncIterator[list[producing.PartitionRecords]]:
    """Each slice's records by partition: upserts (the next slice encoded in a worker thread while this one is
    sent), then deletions and snapshot tombstones."""

    def upserts(start: int) -> list[producing.PartitionRecords]:
        encoded = encode(plan.checked.upserts.slice(start, SLICE))
        return producing.by_partition(encoded.keys, encoded.bodies, plan.occurred_at, topic.partitions, batch_size)

    starts = range(0, len(plan.checked.upserts), SLICE)
    ahead: asyncio.Future | None = None
    for start in starts:
        current = await (ahead or asyncio.to_thread(upserts, start))
        following = start + SLICE
        ahead = asyncio.ensure_future(asyncio.to_thread(upserts, following)) if following < starts.stop else None
        yield current
    for ids in (plan.checked.deletions, plan.absent):
        for start in range(0, len(ids), SLICE):
            keys = _keys(ids[start : start + SLICE])
            yield producing.by_partition(keys, None, plan.occurred_at, topic.partitions, batch_size)


def _keys(ids: np.ndarray) -> pa.Array:
    return pa.array(ids, pa.int64()).cast(pa.string()).cast(pa.binary())
