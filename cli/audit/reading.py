"""Reading the topics into the audit's Evidence: one group-less consumer, partitions assigned and sought by offsets
or timestamps, nothing committed, nothing produced; a progress bar on the terminal."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import TopicPartition
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from services.audit.batch_fold import fold
from services.audit.evidence import Evidence
from services.audit.forgery import NO_CHECK, Signatures
from shared.contracts.catalogue import ACKS, COMMANDS, DIRECTIVES, ENFORCEMENT, IMPACT, NOTIFICATIONS, USERS, Topic
from shared.runtime.kafka import consuming
from shared.runtime.settings import KafkaSettings

WHOLE = (DIRECTIVES, IMPACT)  # read from the beginning whatever the window: what was in force, and who it covered
WINDOWED = (COMMANDS, ACKS, ENFORCEMENT, NOTIFICATIONS)


def user_partition(user: int) -> int:
    """The identity.users.v1 partition of a user's key (the producers' default murmur2 partitioner)."""
    partitions = list(range(USERS.partitions))
    return DefaultPartitioner()(str(user).encode(), partitions, partitions)


async def read_evidence(
    settings: KafkaSettings,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    focus_user: int | None = None,
    topics: Iterable[Topic] = WINDOWED,
    show_progress: bool = True,
    signatures: Signatures = NO_CHECK,
) -> Evidence:
    """The evidence on the topics: directives and impact whole, the others from `since` (by timestamp) to
    `until`; the focus user's registry records from their partition. Records failing `signatures` are kept
    aside as forgeries."""
    evidence = Evidence(focus_user=focus_user, signatures=signatures)
    async with consuming(settings, "audit-evidence") as reader:
        spans = await _spans(reader, list(topics), since, until, focus_user)
        wanted = [tp for tp, (low, high) in spans.items() if high > low]
        if not wanted:
            return evidence
        reader.assign(wanted)
        for tp in wanted:
            reader.seek(tp, spans[tp][0])
        await _drain(
            reader,
            evidence,
            {tp: spans[tp][1] for tp in wanted},
            sum(h - low for low, h in spans.values()),
            show_progress,
        )
    return evidence


async def _spans(reader, topics: list[Topic], since, until, focus_user) -> dict[TopicPartition, tuple[int, int]]:
    every = [TopicPartition(t.name, p) for t in (*WHOLE, *topics) for p in range(t.partitions)]
    if focus_user is not None:
        every.append(TopicPartition(USERS.name, user_partition(focus_user)))
    begins, ends = await reader.beginning_offsets(every), await reader.end_offsets(every)
    windowed = [tp for tp in every if tp.topic not in {t.name for t in WHOLE} and tp.topic != USERS.name]
    starts = dict(begins)
    if since is not None:
        starts.update(await _offsets_at(reader, windowed, since, ends))
    stops = dict(ends)
    if until is not None:
        stops.update(await _offsets_at(reader, windowed, until, ends, after=True))
    return {tp: (starts[tp], stops[tp]) for tp in every}


async def _offsets_at(reader, partitions, moment: datetime, ends, after: bool = False) -> dict[TopicPartition, int]:
    ms = int(moment.timestamp() * 1000) + (1 if after else 0)
    found = await reader.offsets_for_times({tp: ms for tp in partitions})
    return {tp: ends[tp] if at is None else at.offset for tp, at in found.items()}


async def _drain(reader, evidence: Evidence, stops: dict[TopicPartition, int], total: int, show: bool) -> None:
    columns = (TextColumn("reading the topics"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not show, transient=True) as progress:
        task = progress.add_task("read", total=total)
        pending = dict(stops)
        while pending:
            batches = await reader.getmany(*pending, timeout_ms=500)
            for tp, records in batches.items():
                stop = pending.get(tp)
                if stop is not None:
                    wanted = (r for r in records if r.offset < stop)
                    fold(
                        evidence,
                        [(r.topic, r.partition, r.offset, r.key, r.value, r.timestamp, r.headers) for r in wanted],
                    )
                progress.advance(task, len(records))
            for tp in list(pending):
                if await reader.position(tp) >= pending[tp]:
                    pending.pop(tp)
                    reader.pause(tp)
