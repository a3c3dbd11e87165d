"""Active/standby among impact instances through the directive consumer group: every partition goes to one member
(the one that promoted last keeps them), and that member alone assesses and publishes. See the README.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiokafka import ConsumerRebalanceListener
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment, ConsumerProtocolMemberMetadata

log = structlog.get_logger(service="impact")
ASSIGNOR = "countermand-sole"
_EPOCH = struct.Struct(">i")  # what a member holding the partitions claims: the epoch its promotion fenced with


def sole_member(claims: Mapping[str, int | None]) -> str:
    """The member that gets every partition: the claimant of the highest epoch (the latest to promote, which has
    fenced every earlier one), else the first member id (nobody holds them: a fresh group or the holder left)."""
    holders = [(epoch, member) for member, epoch in claims.items() if epoch is not None]
    if holders:
        return max(holders)[1]
    return min(claims)


def claim_of(user_data: bytes) -> int | None:
    """The epoch a member's join metadata claims (None: it holds nothing, or says nothing readable)."""
    return _EPOCH.unpack(user_data)[0] if len(user_data) == _EPOCH.size else None


def sole_assignor(claim: Callable[[], int | None]) -> type[AbstractPartitionAssignor]:
    """An assignor class (aiokafka takes classes) whose members state `claim()` when they join."""

    class SoleAssignor(AbstractPartitionAssignor):
        name = ASSIGNOR
        version = 0

        @classmethod
        def assign(cls, cluster: Any, members: Mapping[str, ConsumerProtocolMemberMetadata]) -> dict:
            chosen = sole_member({m: claim_of(meta.user_data or b"") for m, meta in members.items()})
            topics = sorted({t for meta in members.values() for t in meta.subscription})
            every = [(t, sorted(cluster.partitions_for_topic(t) or ())) for t in topics]
            return {
                m: ConsumerProtocolMemberAssignment(cls.version, every if m == chosen else [], b"") for m in members
            }

        @classmethod
        def metadata(cls, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:
            epoch = claim()
            return ConsumerProtocolMemberMetadata(
                cls.version, sorted(topics), b"" if epoch is None else _EPOCH.pack(epoch)
            )

        @classmethod
        def on_assignment(cls, assignment: ConsumerProtocolMemberAssignment) -> None:
            return None

    return SoleAssignor


@dataclass
class Leadership:
    """This instance's role. `promote()` runs once it is given the partitions (fence the predecessor, rebuild the
    directive state from Kafka, reconcile); losing them afterwards calls `lost(reason)`: the process stops and its
    orchestrator restarts it as a standby, rather than it carrying on half active."""

    promote: Callable[[], Awaitable[int]]  # returns the epoch it fenced with
    lost: Callable[[str], None]
    epoch: int | None = None  # set once promoted
    settled: asyncio.Event = field(default_factory=asyncio.Event)  # the first assignment is known (either role)
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # promoted and reconciled: directives may be assessed
    _promoting: asyncio.Task | None = None

    @property
    def role(self) -> str:
        return "active" if self.ready.is_set() else "promoting" if self._promoting else "standby"

    def claim(self) -> int | None:
        return self.epoch

    def listener(self) -> ConsumerRebalanceListener:
        return _Listener(self)

    def assigned(self, partitions: set) -> None:
        if partitions and self._promoting is None:
            log.info("directive partitions assigned: promoting to active", partitions=len(partitions))
            self._promoting = asyncio.create_task(self._promote())
            return
        if not partitions and self._promoting is not None:
            self.lost("the directive partitions were assigned to another impact instance")
        elif not partitions:
            log.info("standing by: another impact instance holds the directive partitions")
        self.settled.set()

    async def _promote(self) -> None:
        try:
            self.epoch = await self.promote()
        except Exception as exc:
            log.exception("promotion to active failed")
            self.lost(f"promotion failed: {type(exc).__name__}: {exc}")
            return
        self.ready.set()
        self.settled.set()
        log.info("impact instance active", epoch=self.epoch)

    async def stop(self) -> None:
        if self._promoting is not None and not self._promoting.done():
            self._promoting.cancel()
            await asyncio.gather(self._promoting, return_exceptions=True)


class _Listener(ConsumerRebalanceListener):
    def __init__(self, leadership: Leadership) -> None:
        self._leadership = leadership

    async def on_partitions_revoked(self, revoked: set) -> None:
        if revoked:  # a member joined or left: the group decides again, and the holder keeps them (sole_member)
            log.info("consumer group rebalance: directive partitions revoked until it settles", partitions=len(revoked))

    async def on_partitions_assigned(self, assigned: set) -> None:
        self._leadership.assigned(assigned)
