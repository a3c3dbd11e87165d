"""Health of a service's consumers: records that keep failing, dead letters that could not be written, lag that
does not move. What a service's /readyz reports and what it logs as errors, naming topic, partition and offset.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiokafka.errors import KafkaError

from shared.contracts.catalogue import Topic
from shared.runtime.kafka import OffsetProbe, admin
from shared.runtime.metrics import observe_lag
from shared.runtime.settings import KafkaSettings

Position = tuple[str, int]  # (topic, partition)


@dataclass(frozen=True)
class Stuck:
    """A consumer that does not get past one record."""

    topic: str
    partition: int
    offset: int
    why: str

    def describe(self) -> dict[str, Any]:
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset, "why": self.why}


@dataclass
class ConsumerWatch:
    """Per service: failures per record, and the positions where consumption is stuck (pure but for logging).

    A record that failed more than `stuck_after` times is stuck (a handler that keeps raising and is
    redelivered); so is a group whose committed offset has not moved for a while although records wait
    (see LagWatch). A dead letter that could not be written is counted: the record was skipped.
    """

    service: str
    stuck_after: int = 5
    failures: dict[tuple[str, int, int], int] = field(default_factory=dict)
    stuck: dict[Position, Stuck] = field(default_factory=dict)
    unwritten_letters: int = 0

    def __post_init__(self) -> None:
        self._log = structlog.get_logger(service=self.service)

    def failed(self, topic: str, partition: int, offset: int, error: str) -> None:
        """A record's processing failed once more."""
        key = (topic, partition, offset)
        self.failures[key] = self.failures.get(key, 0) + 1
        if self.failures[key] > self.stuck_after and (topic, partition) not in self.stuck:
            self._mark(Stuck(topic, partition, offset, f"failed {self.failures[key]} times: {error[:300]}"))

    def passed(self, topic: str, partition: int, offset: int) -> None:
        """A record was processed (or dead-lettered): the consumer got past it."""
        self.failures.pop((topic, partition, offset), None)
        held = self.stuck.get((topic, partition))
        if held is not None and offset >= held.offset:
            del self.stuck[(topic, partition)]
            self._log.info("consumer moving again", topic=topic, partition=partition, offset=offset)

    def letter_unwritten(self, topic: str, partition: int, offset: int, error: str) -> None:
        """A dead letter could not be produced: the record was skipped, recorded here and in the log."""
        self.unwritten_letters += 1
        self._log.error(
            "dead letter could not be written; the record was skipped and stays on its topic",
            topic=topic,
            partition=partition,
            offset=offset,
            error=error[:500],
        )

    def lag_stalled(self, topic: str, partition: int, offset: int, seconds: float, waiting: int) -> None:
        """A group's committed offset has not moved for `seconds` while `waiting` records are behind it."""
        if (topic, partition) not in self.stuck:
            self._mark(
                Stuck(topic, partition, offset, f"no progress for {seconds:.0f}s with {waiting} records waiting")
            )

    def lag_moved(self, topic: str, partition: int, offset: int) -> None:
        held = self.stuck.get((topic, partition))
        if held is not None and held.why.startswith("no progress") and offset > held.offset:
            del self.stuck[(topic, partition)]

    @property
    def healthy(self) -> bool:
        return not self.stuck

    def report(self) -> dict[str, Any]:
        """What /readyz adds: the stuck positions and the count of dead letters that could not be written."""
        return {"stuck": [s.describe() for s in self.stuck.values()], "unwritten_dead_letters": self.unwritten_letters}

    def _mark(self, stuck: Stuck) -> None:
        self.stuck[(stuck.topic, stuck.partition)] = stuck
        self._log.error(
            "consumer stuck", topic=stuck.topic, partition=stuck.partition, offset=stuck.offset, why=stuck.why
        )


@dataclass
class LagWatch:
    """Polls a consumer group's committed offsets against the topics' end offsets; reports stalls to the watch."""

    settings: KafkaSettings
    group: str
    topics: tuple[Topic, ...]
    watch: ConsumerWatch
    stall_after_s: float = 60.0
    interval_s: float = 10.0
    partitions: Mapping[str, Iterable[int]] | None = None  # topic -> the partitions the group reads (default: all)
    clock: Callable[[], float] = time.monotonic
    _last: dict[Position, tuple[int, float]] = field(default_factory=dict)

    def observe(self, committed: dict[Position, int], ends: dict[Position, int]) -> None:
        """One observation (pure but for the watch): a position behind its end that has not moved is stalled."""
        now = self.clock()
        for position, end in ends.items():
            offset = committed.get(position, 0)
            before = self._last.get(position)
            if before is None or before[0] != offset:
                self._last[position] = (offset, now)
                self.watch.lag_moved(*position, offset)
                continue
            if end > offset and now - before[1] >= self.stall_after_s:
                self.watch.lag_stalled(*position, offset, now - before[1], end - offset)

    async def run(self) -> None:
        """Observe every interval until cancelled; a broker hiccup skips one observation."""
        log = structlog.get_logger(service=self.watch.service)
        probe = OffsetProbe(self.settings, f"{self.watch.service}-lag")
        await probe.start()
        try:
            async with admin(self.settings, f"{self.watch.service}-lag") as client:
                while True:
                    try:
                        await self.sample(client, probe)
                    except (KafkaError, OSError) as exc:
                        log.debug("lag observation skipped", error=repr(exc))
                    await asyncio.sleep(self.interval_s)
        finally:
            await probe.stop()

    async def sample(self, client: Any, probe: OffsetProbe) -> None:
        """Read the group's committed offsets and the end offsets now, and observe them."""
        committed, ends = await self._committed(client), await self._ends(probe)
        for (topic, partition), end in ends.items():
            offset = committed.get((topic, partition), 0)
            # After a transaction the end lies past its commit marker, which no consumer commits past until the
            # next record: only markers (or aborted records) between them means nothing waits.
            if end > offset and not await probe.holds_records(topic, partition, offset, end):
                ends[(topic, partition)] = offset
        self.observe(committed, ends)
        observe_lag(self.group, committed, ends)

    async def _committed(self, client: Any) -> dict[Position, int]:
        offsets = await client.list_consumer_group_offsets(self.group)
        return {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items() if meta.offset >= 0}

    async def _ends(self, probe: OffsetProbe) -> dict[Position, int]:
        ends: dict[Position, int] = {}
        for topic in self.topics:
            read = (self.partitions or {}).get(topic.name)
            ends.update({(topic.name, p): end for p, end in (await probe.end_offsets(topic, read)).items()})
        return ends


def readiness(ready: bool, watch: ConsumerWatch | None = None, **details: Any) -> tuple[int, dict[str, Any]]:
    """The status code and body of /readyz: 200 only when the service says it is ready and nothing is stuck."""
    body: dict[str, Any] = {"ready": ready, **details}
    if watch is not None:
        body.update(watch.report())
        body["ready"] = ready and watch.healthy
    return (200 if body["ready"] else 503), body
