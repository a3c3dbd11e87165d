"""Message handlers: decode, tell the Pairing, persist the half, dispatch when a pair is complete."""

from __future__ import annotations

import asyncio

import structlog

from services.notifier.delivery import Delivery
from services.notifier.pairing import Ready
from services.notifier.pending import PendingStore
from shared.contracts.bitmaps import decode_bitmap
from shared.contracts.enforcement import DirectiveEnforced, EnforcementOverdue, EnforcementProgressed
from shared.contracts.impact import AffectedSetChunk, AffectedSetDelta, AssessmentKey, ImpactAssessed
from shared.runtime.logging import bind_message_ids

log = structlog.get_logger(service="notifier")


class Handlers:
    """The notifier's reactions to impact and enforcement events; idempotent under redelivery."""

    def __init__(self, store: PendingStore, delivery: Delivery) -> None:
        self._store = store
        self._delivery = delivery
        self.pairing = store.restore()
        self._lock = asyncio.Lock()  # one dispatch at a time, so a key is never dispatched twice at once

    async def on_impact(self, event: ImpactAssessed | AffectedSetChunk | AffectedSetDelta) -> None:
        bind_message_ids(event.correlation_id, event.event_id)
        if isinstance(event, AffectedSetDelta):
            return  # notices for registry changes after enforcement are not sent yet
        if getattr(event, "part", "whole") != "whole":
            return  # an amendment's added/removed chunks: notices are built from the whole set
        key = AssessmentKey.of(event)
        if self.pairing.is_done(key):
            return
        if isinstance(event, ImpactAssessed):
            ready = self.pairing.assessed(key, event.chunks, event.registry_offsets)
            self._store.assessed(key, event.chunks, event.registry_offsets)
        else:
            users = decode_bitmap(event.users)
            ready = self.pairing.chunk(key, event.chunk, event.chunks, event.model, users)
            self._store.chunk(key, event.chunk, event.chunks, event.model, users)
        await self._dispatch(ready)

    async def on_enforcement(self, event: EnforcementProgressed | DirectiveEnforced | EnforcementOverdue) -> None:
        if not isinstance(event, DirectiveEnforced):
            return  # progress and overdue reports carry nothing for customers
        bind_message_ids(event.correlation_id, event.event_id)
        key = AssessmentKey.of(event)
        if self.pairing.is_done(key):
            return
        ready = self.pairing.enforced(key, event.event_id)
        self._store.enforced(key, event.event_id)
        await self._dispatch(ready)

    async def resume(self) -> None:
        """Dispatch pairs that were complete when the service stopped."""
        for ready in self.pairing.ready():
            await self._dispatch(ready)

    async def _dispatch(self, ready: Ready | None) -> None:
        if ready is None:
            return
        async with self._lock:
            if self.pairing.is_done(ready.key):
                return
            await self._delivery.dispatch(ready)
            self._store.dispatched(ready.key)
            self.pairing.dispatched(ready.key)
