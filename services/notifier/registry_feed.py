"""Follows identity.users.v1 from its beginning into the UserDirectory.

No consumer group and manual assignment of every partition, on purpose: the registry topic is keyed
by user id, so a group would give each notifier instance only its share of the users, while any
instance may have to notify any user of a directive. Every instance reads the whole compacted topic
from offset 0 at start-up and keeps following it; there is nothing to commit because the view is
rebuilt on every start.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import TypeAdapter, ValidationError

from services.notifier.directory import UserDirectory
from services.notifier.notices import Contact
from services.notifier.settings import NotifierSettings
from shared.contracts.catalogue import USERS
from shared.contracts.deadletter import DeadLetter
from shared.contracts.users import UserUpserted
from shared.runtime import kafka
from shared.runtime.deadletters import write_dead_letter
from shared.runtime.service import cancel_tasks

SERVICE = "notifier"
_USER = TypeAdapter(UserUpserted)
log = structlog.get_logger(service=SERVICE)


@dataclass(frozen=True)
class Grant:
    """A registry record gave a known user models it did not hold before."""

    user: int
    models: tuple[str, ...]
    partition: int
    offset: int
    event_id: str


def apply_record(
    directory: UserDirectory, key: bytes | None, value: bytes | None
) -> tuple[int, str, frozenset[str]] | None:
    """Apply one registry record; raises ValueError/ValidationError naming what is wrong. Returns (user, event id,
    models gained) when a user already in the directory was given new entitlements."""
    if value is None:
        directory.remove(_user_id(key))
        return None
    user = _USER.validate_json(value)
    before = directory.contacts.get(user.user_id)
    contact = Contact(
        user.email, user.locale, frozenset(user.entitlements), user.organisation, user.account_type, user.org_admin
    )
    directory.upsert(user.user_id, contact)
    gained = contact.entitlements - (before.entitlements or frozenset()) if before is not None else frozenset()
    return (user.user_id, user.event_id, gained) if gained else None


def _user_id(key: bytes | None) -> int:
    try:
        return int((key or b"").decode())
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"key: a tombstone needs a decimal user id as key, got {key!r}") from exc


class RegistryFeed:
    """Batch-consumes the registry into a directory; dead-letters bad records one by one."""

    def __init__(
        self, settings: NotifierSettings, directory: UserDirectory, dead_letter: Callable[[DeadLetter], Awaitable[Any]]
    ) -> None:
        # (grants, next offset per partition) per batch, for whoever tells entitlements granted later; the
        # positions say up to where grants were looked at, so a restart looks again only past them.
        self.grants: asyncio.Queue[tuple[list[Grant], dict[int, int]]] | None = None
        self.grants_checked: dict[int, int] = {}
        self._settings = settings
        self.directory = directory
        self._dead_letter = dead_letter
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._caught_up = asyncio.Event()
        self._start_target: dict[int, int] = {}
        self._started = time.monotonic()

    async def start(self) -> None:
        consumer = kafka.consumer(self._settings.kafka, f"notifier-registry-{self._settings.instance}")
        await consumer.start()
        self._consumer = consumer
        # The catalogue is the partition count's source of truth (topics are created and grown from it).
        partitions = [TopicPartition(USERS.name, p) for p in range(USERS.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        self._start_target = {tp.partition: offset for tp, offset in ends.items()}
        self._task = asyncio.create_task(self._follow(partitions), name="notifier-registry")

    @property
    def caught_up(self) -> bool:
        """Whether the view has read the registry as far as it went at start."""
        return self._caught_up.is_set()

    async def stop(self) -> None:
        await cancel_tasks(self._task)
        if self._consumer is not None:
            await self._consumer.stop()

    async def wait_until(self, offsets: Mapping[int, int], timeout_s: float) -> bool:
        """Wait until the view has caught up at start-up and reflects these offsets; False on timeout."""
        deadline = time.monotonic() + timeout_s
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._caught_up.wait(), timeout_s)
        while not (self._caught_up.is_set() and self.directory.reached(offsets)):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def take(self, batch: Mapping[TopicPartition, list[Any]], positions: Mapping[int, int]) -> None:
        """Apply a batch of registry records read up to these positions (partition -> next offset); entitlements
        granted in it go to the grants queue with the offsets they were read up to."""
        grants = await self._apply(batch)
        for partition, next_offset in positions.items():
            self.directory.advance(partition, next_offset)
        if self.grants is not None and batch:
            ends = {tp.partition: records[-1].offset + 1 for tp, records in batch.items() if records}
            self.grants.put_nowait((grants, ends))
        self._note_caught_up()

    def _note_caught_up(self) -> None:
        if not self._caught_up.is_set() and self.directory.reached(self._start_target):
            self._caught_up.set()
            log.info(
                "user registry loaded",
                users=len(self.directory.contacts),
                seconds=round(time.monotonic() - self._started, 2),
            )

    async def _follow(self, partitions: list[TopicPartition]) -> None:
        assert self._consumer is not None
        self._started = time.monotonic()
        while True:
            try:
                batch = await self._consumer.getmany(timeout_ms=500, max_records=self._settings.registry_fetch)
                await self.take(batch, {tp.partition: await self._consumer.position(tp) for tp in partitions})
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep the view alive; the failed batch is logged, not retried
                log.error("registry batch failed", error=repr(exc))
                await asyncio.sleep(1)
            self._note_caught_up()

    async def _apply(self, batch: Mapping[TopicPartition, list[Any]]) -> list[Grant]:
        refused, grants = [], []
        for records in batch.values():
            for record in records:
                try:
                    gained = apply_record(self.directory, record.key, record.value)
                except (ValueError, ValidationError) as exc:
                    refused.append((record, exc))
                    continue
                if gained is not None and record.offset >= self.grants_checked.get(record.partition, 0):
                    user, event_id, models = gained
                    grants.append(Grant(user, tuple(sorted(models)), record.partition, record.offset, event_id))
        await asyncio.gather(*(write_dead_letter(self._dead_letter, record, SERVICE, exc) for record, exc in refused))
        return grants
