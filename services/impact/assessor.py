"""Directives assessed, lifted and followed: what impact publishes about each, in order.

Holds the active directives; registry changes come in as user ids and go out as deltas.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import structlog

from services.impact.affected import assess, breakdown
from services.impact.directives import Delta, Directives
from services.impact.losing import losing_by_model
from services.impact.messages import Cause, assessment, delta_message
from services.impact.view_follower import ViewFollower
from shared.contracts.directives import (
    PROPOSAL_EVENTS,
    CausedBy,
    DirectiveEvent,
    DirectiveIssued,
    DirectiveLifted,
)
from shared.contracts.envelope import utc_now
from shared.runtime.dispatch import Dispatch, ignored

log = structlog.get_logger(service="impact")


@dataclass
class Assessor:
    """Assesses and lifts directives over the follower's view; publishes assessments and deltas."""

    follower: ViewFollower
    publish_all: Callable[[list[Any]], Awaitable[None]]  # in order, the assessment first
    publish: Callable[[Any], Awaitable[None]]
    directives: Directives = field(default_factory=Directives)
    loaded: bool = False  # deltas start once the view has caught up after start (see reconcile)
    _unsent: list[tuple[Delta, CausedBy | None]] = field(default_factory=list)

    @property
    def lock(self) -> asyncio.Lock:
        return self.follower.lock

    async def on_directive(self, event: DirectiveEvent) -> None:
        await RULES.handler(event)(self, event)

    async def on_issued(self, event: DirectiveIssued) -> None:
        if self.directives.is_assessed(event.directive_id, event.revision):
            log.info("revision already assessed, ignored", revision=event.revision)
            return
        await self.follower.catch_up()
        async with self.lock:
            if not self.directives.is_assessed(event.directive_id, event.revision):
                await self._assess(event)

    async def _assess(self, event: DirectiveIssued) -> None:
        affected = assess(self.follower.view.population, event.scope)
        amendment = self.directives.amendment(event.directive_id, affected.by_model)
        cause = Cause(event.directive_id, event.revision, event.event_id, utc_now(), CausedBy.of(event))
        offsets = self.follower.offsets()
        losing = affected.losing  # counted in the evaluation pass (equal to losing_by_model, a test holds it to that)
        await self.publish_all(
            assessment(cause, "restrict", event.scope, affected, offsets, amendment=amendment, losing=losing)
        )
        self.directives.activate(
            event.directive_id, event.revision, event.scope, affected.by_model, affected.set_digests
        )
        log.info(
            "directive assessed",
            revision=event.revision,
            users=affected.users,
            digest=affected.digest,
            amended_from=amendment.amended_from if amendment else None,
        )

    async def on_lifted(self, event: DirectiveLifted) -> None:
        async with self.lock:
            active = self.directives.active.get(event.directive_id)
            if active is None or event.revision < active.revision:
                log.warning(
                    "lift of a directive not active (or of an older revision), ignored", revision=event.revision
                )
                return
            restored = breakdown(self.follower.view.population, self.directives.restored(event.directive_id))
            cause = Cause(event.directive_id, active.revision, event.event_id, utc_now(), CausedBy.of(event))
            losing = losing_by_model(self.follower.view.population, restored.by_model)  # who regains a model they hold
            await self.publish_all(
                assessment(cause, "lift", active.scope, restored, self.follower.offsets(), losing=losing)
            )
            self.directives.lift(event.directive_id)
            log.info("directive lifted", restored=restored.users, digest=restored.digest)

    async def changed(self, ids: np.ndarray, producers: Iterable[str] = ()) -> None:
        """Users whose registry record changed (the caller holds the lock), and the producers of those records:
        publish the deltas they cause."""
        if self.loaded:
            cause = CausedBy.registry(producers)
            self._unsent.extend((d, cause) for d in self.directives.deltas(self.follower.view.population, ids))
        await self._flush_deltas()

    async def _flush_deltas(self) -> None:
        # Deltas are queued before the first publish so a failed publish is retried, never recomputed away.
        now = utc_now()
        while self._unsent:
            delta, cause = self._unsent[0]
            await self.publish(delta_message(delta, None, now, cause))
            self._unsent.pop(0)

    async def reconcile(self) -> None:
        """After a restart: re-evaluate every user against the recovered directives and publish the differences."""
        await self.follower.catch_up()
        async with self.lock:
            # Records changed while impact was down: their producers are not known here.
            self._unsent.extend((d, None) for d in self.directives.reevaluated(self.follower.view.population))
            self.loaded = True
            await self._flush_deltas()
        log.info(
            "user view loaded",
            users=self.follower.view.population.users,
            offsets=self.follower.view.offsets,
            active=len(self.directives.active),
            resumed_from=self.follower.resumed_from,
            records_read=self.follower.records_read,
        )


RULES = Dispatch(
    {
        DirectiveIssued: Assessor.on_issued,
        DirectiveLifted: Assessor.on_lifted,
        **dict.fromkeys(PROPOSAL_EVENTS, ignored),  # proposals and approvals: nothing is in force until issued
    }
)
