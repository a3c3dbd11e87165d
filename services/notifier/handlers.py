"""Message handlers: decode, tell the Pairing (assessments) or the DeltaPairing (registry deltas), persist the
half, dispatch when a pair is complete."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import structlog
from pyroaring import BitMap

from services.notifier.coverage_store import CoverageStore
from services.notifier.delivery import Delivery
from services.notifier.delta_pairing import Delta
from services.notifier.pairing import Ready
from services.notifier.pending import DeltaStore, PendingStore
from services.notifier.registry_feed import Grant
from services.notifier.serving import confirmed_models
from services.notifier.serving_store import ServingStore
from shared.contracts.bitmaps import decode_bitmap
from shared.contracts.enforcement import (
    ClusterProgress,
    DirectiveEnforced,
    EnforcementOverdue,
    EnforcementProgressed,
)
from shared.contracts.impact import AffectedSetChunk, AffectedSetDelta, AssessmentKey, ImpactAssessed
from shared.runtime.dispatch import Dispatch
from shared.runtime.logging import bind_message_ids

log = structlog.get_logger(service="notifier")


class Handlers:
    """The notifier's reactions to impact and enforcement events; idempotent under redelivery."""

    def __init__(self, store: PendingStore, delivery: Delivery) -> None:
        self._store = store
        self._delivery = delivery
        self.pairing = store.restore()
        self._deltas = DeltaStore(store.connection)
        self.delta_pairing = self._deltas.restore()
        self.coverage = CoverageStore(store.connection)
        self._serving = ServingStore(store.connection)  # directive -> cluster -> models (last restrict report)
        self._lock = asyncio.Lock()  # one dispatch at a time, so a key is never dispatched twice at once

    async def on_impact(self, event: ImpactAssessed | AffectedSetChunk | AffectedSetDelta) -> None:
        await RULES.handler(event)(self, event)

    async def on_enforcement(self, event: EnforcementProgressed | DirectiveEnforced | EnforcementOverdue) -> None:
        await RULES.handler(event)(self, event)

    async def on_assessed(self, event: ImpactAssessed) -> None:
        if event.action == "restrict":  # the state registry deltas of this revision start from
            self._deltas.assessed(AssessmentKey.of(event), event.model_digests)
            await self._tell_deltas(self.delta_pairing.assessed(AssessmentKey.of(event), event.model_digests))
        key = self._fresh(event)
        if key is not None:
            diff = (event.chunks, event.registry_offsets, event.diff_chunks, event.amended_from)
            ready = self.pairing.assessed(key, *diff)
            self._store.assessed(key, *diff)
            await self._dispatch(ready)

    async def on_chunk(self, event: AffectedSetChunk) -> None:
        key = self._fresh(event)
        if key is None:
            return
        users = decode_bitmap(event.users)
        if event.part == "whole":
            ready = self.pairing.chunk(key, event.chunk, event.chunks, event.model, users)
            self._store.chunk(key, event.chunk, event.chunks, event.model, users)
        else:  # an amendment's difference: who gains or loses access between the revisions
            ready = self.pairing.diff_chunk(key, event.chunk, event.chunks, event.part, event.model, users)
            self._store.diff_chunk(key, event.chunk, event.chunks, event.part, event.model, users)
        await self._dispatch(ready)

    async def on_delta(self, event: AffectedSetDelta) -> None:
        """A registry change: told once every cluster holds the state after it."""
        bind_message_ids(event.correlation_id, event.event_id)
        key = AssessmentKey.of(event)
        added, removed = decode_bitmap(event.added), decode_bitmap(event.removed)
        delta = Delta(event.seq, event.model, event.model_digest, added, removed)
        self._deltas.delta(key, delta)
        await self._tell_deltas(self.delta_pairing.delta(key, delta))

    async def on_progress(self, event: EnforcementProgressed) -> None:
        """Clusters applied: notices naming only models every cluster serving them applied are due; a delta once
        every cluster serving its model holds it; every cluster applied confirms the state with this digest."""
        key = AssessmentKey.of(event)
        if event.action == "restrict":
            self._serving.reported(event.directive_id, {c: p.models for c, p in event.clusters.items() if p.models})
            reports = {c: (frozenset(p.models), _applied_digest(p)) for c, p in event.clusters.items()}
            self._deltas.clusters(key, reports, event.event_id)
            await self._tell_deltas(self.delta_pairing.clusters(key, reports, event.event_id))
            if all(p.state == "applied" for p in event.clusters.values()):
                await self._confirmed(key, event.expected_digest, event.event_id)
        if self._fresh(event) is not None:
            known = self._serving.of(event.directive_id)  # a lift's report names no models: the restriction's
            models = confirmed_models(event.clusters, self.pairing.models(key), known)
            if models:
                self._store.confirmed(key, models, event.event_id)
                await self._dispatch(self.pairing.confirmed(key, models, event.event_id))

    async def _confirmed(self, key: AssessmentKey, digest: str, event_id: str) -> None:
        self._deltas.confirmed(key, digest, event_id)
        await self._tell_deltas(self.delta_pairing.confirmed(key, digest, event_id))

    async def on_enforced(self, event: DirectiveEnforced) -> None:
        if event.action == "restrict":
            await self._confirmed(AssessmentKey.of(event), event.digest, event.event_id)
        key = self._fresh(event)
        if key is not None:
            ready = self.pairing.enforced(key, event.event_id)
            self._store.enforced(key, event.event_id)
            await self._dispatch(ready)

    async def ignore(self, event: object) -> None:
        """Overdue reports: nothing for customers."""

    def _fresh(
        self, event: ImpactAssessed | AffectedSetChunk | DirectiveEnforced | EnforcementProgressed
    ) -> AssessmentKey | None:
        """The event's key, unless its notices were all dispatched already."""
        bind_message_ids(event.correlation_id, event.event_id)
        key = AssessmentKey.of(event)
        return None if self.pairing.is_done(key) else key

    async def resume(self) -> None:
        """Dispatch pairs that were complete when the service stopped."""
        for ready in self.pairing.ready():
            await self._dispatch(ready)
        await self._tell_deltas(self.delta_pairing.ready())

    async def _tell_deltas(self, due: list[tuple[int, Ready]]) -> None:
        """Deltas of a revision are told after the revision itself (so the coverage they change is in place)."""
        for seq, ready in due:
            if not self.pairing.is_done(ready.key):
                continue  # offered again once the revision is dispatched
            async with self._lock:
                if self.delta_pairing.is_sent(ready.key, seq):  # told meanwhile (resume and a handler both offered it)
                    continue
                await self._delivery.dispatch(self._net(ready))  # the ledger skips what a crash left sent
                for model in {*ready.added, *ready.removed}:
                    added, removed = ready.added.get(model, BitMap()), ready.removed.get(model, BitMap())
                    self.coverage.delta(ready.key.directive_id, ready.key.revision, model, added, removed)
                self._deltas.sent(ready.key, seq)
                self.delta_pairing.sent(ready.key, seq)

    async def _dispatch(self, ready: Ready | None) -> None:
        if ready is None:
            return
        async with self._lock:
            if self.pairing.is_done(ready.key):
                return
            await self._delivery.dispatch(self._net(self._whole_unless_told(ready)))
            if ready.partial:  # the key stays open for the notices naming models not confirmed yet
                return
            if ready.key.action == "lift":
                self.coverage.lifted(ready.key.directive_id)
            else:
                self.coverage.enforced(ready.key.directive_id, ready.key.revision, ready.sets)
            # An older revision not told yet never will be: this one says where its users stand now.
            for key in [*(self.pairing.older(ready.key) if ready.key.action == "restrict" else []), ready.key]:
                self._store.dispatched(key)
                self.pairing.dispatched(key)
        await self._tell_deltas(self.delta_pairing.ready())

    def _whole_unless_told(self, ready: Ready) -> Ready:
        """An amendment of a revision whose notices never went out (amended before it was confirmed) is told
        whole: nobody heard of the revision it changes."""
        if ready.occasion != "amendment" or ready.amended_from is None:
            return ready
        amended = AssessmentKey(ready.key.directive_id, ready.amended_from, "restrict")
        return ready if self.pairing.is_done(amended) else replace(ready, occasion="assessment", removed={})

    def _net(self, ready: Ready) -> Ready:
        """Access comes back only where no other directive still covers it (a lift's set is net already)."""
        if not ready.removed:
            return ready
        others = self.coverage.coverage.elsewhere
        removed = {m: u - others(ready.key.directive_id, m) for m, u in ready.removed.items()}
        return replace(ready, removed={m: u for m, u in removed.items() if u})

    async def tell_grants(self, grants: list[Grant], checked: dict[int, int]) -> None:
        """Entitlements granted to users already covered: "not available to you because of ..." once each."""
        for grant in grants:
            for ready in self._granted(grant):
                async with self._lock:
                    await self._delivery.dispatch(ready)
        for partition, next_offset in checked.items():
            self.coverage.check_grants(partition, next_offset)

    def _granted(self, grant: Grant) -> list[Ready]:
        by_directive: dict[tuple[str, int], dict[str, BitMap]] = {}
        for model in grant.models:
            for directive in self.coverage.coverage.covering(grant.user, model):
                by_directive.setdefault(directive, {})[model] = BitMap([grant.user])
        return [
            Ready(
                AssessmentKey(directive_id, revision, "restrict"),
                {},
                grant.event_id,
                {},
                added=models,
                occasion="entitled",
                suffix=f":entitled-{grant.partition}-{grant.offset}",
            )
            for (directive_id, revision), models in sorted(by_directive.items())
        ]

    async def follow_grants(self, queue: asyncio.Queue[tuple[list[Grant], dict[int, int]]]) -> None:
        """Tell grants as the registry feed finds them (runs until cancelled)."""
        while True:
            grants, checked = await queue.get()
            while True:
                try:
                    await self.tell_grants(grants, checked)
                    break
                except Exception as exc:  # a broker or disk hiccup: the same grants again (the ledger dedupes)
                    log.error("telling entitlement grants failed; retrying", error=repr(exc))
                    await asyncio.sleep(1)


def _applied_digest(progress: ClusterProgress) -> str | None:
    """The digest a cluster holds when applied (what it acknowledged), else None."""
    return (progress.digest or progress.expected_digest) if progress.state == "applied" else None


RULES = Dispatch(
    {  # what the notifier does with each message class it consumes
        ImpactAssessed: Handlers.on_assessed,
        AffectedSetChunk: Handlers.on_chunk,
        AffectedSetDelta: Handlers.on_delta,
        DirectiveEnforced: Handlers.on_enforced,
        EnforcementProgressed: Handlers.on_progress,
        EnforcementOverdue: Handlers.ignore,
    }
)
