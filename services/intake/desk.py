"""The intake desk: issues and lifts directives against the book, one decision at a time."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from services.intake.book import CatchUp, DirectiveBook
from shared.contracts.directives import DirectiveIssued, DirectiveLifted, DirectiveRequest

SERVICE = "intake"
DirectiveEvent = DirectiveIssued | DirectiveLifted
Publish = Callable[[DirectiveEvent], Awaitable[None]]
Outcome = Literal["published", "replayed", "unchanged"]


class NotReady(Exception):
    """The directive view has not caught up yet, so revisions cannot be assigned safely."""


class PublishFailed(Exception):
    """The broker did not acknowledge the directive event; the book is unchanged."""


@dataclass(frozen=True)
class Decision:
    """What a request came to: a new event published, an earlier answer replayed (same Idempotency-Key and
    request), or nothing to do (the directive already says exactly this)."""

    event: DirectiveEvent
    outcome: Outcome


def request_digest(action: str, request: dict[str, Any]) -> str:
    """SHA-256 of a request as validated (so formatting and defaults make no difference), per action."""
    canonical = json.dumps({"action": action, "request": request}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class DirectiveDesk:
    """Assigns revisions from the book, publishes, and records what it published."""

    def __init__(self, publish: Publish) -> None:
        self.book = DirectiveBook()
        self._publish = publish
        self._catch_up: CatchUp | None = None
        # Revision assignment and its publish form one step per process, so two requests for the same
        # id cannot both take revision n + 1 (nor one key two events).
        self._lock = asyncio.Lock()

    def expect(self, end_offsets: dict[int, int]) -> None:
        """The end offsets of the directive topic when this instance started."""
        self._catch_up = CatchUp(end_offsets)

    @property
    def ready(self) -> bool:
        return self._catch_up is not None and self._catch_up.caught_up

    def record(self, event: DirectiveEvent | None, partition: int, offset: int) -> None:
        """A record read from the directive topic (None when it was not a valid directive event)."""
        if event is not None:
            self.book.apply(event)
        if self._catch_up is not None:
            self._catch_up.saw(partition, offset)

    async def issue(self, request: DirectiveRequest, key: str | None = None) -> Decision:
        """Issue a new directive or amend an issued one; a repeat is answered as before, not issued again."""
        digest = request_digest("issue", request.model_dump(mode="json"))
        async with self._lock:
            self._check_ready()
            earlier = self.book.answered(key, digest)
            if earlier is not None:
                return Decision(earlier, "replayed")
            current = self.book.current_issue_if_same(request)
            if current is not None:
                return Decision(current, "unchanged")
            revision = self.book.next_revision(request.directive_id)
            event = DirectiveIssued(
                producer=SERVICE,
                correlation_id=request.directive_id,
                directive_id=request.directive_id,
                revision=revision,
                title=request.title,
                authority=request.authority,
                scope=request.scope,
                idempotency_key=key,
                request_digest=digest if key is not None else None,
            )
            await self._publish_or_fail(event)
            self.book.apply(event)
            return Decision(event, "published")

    async def lift(self, directive_id: str, reason: str, key: str | None = None) -> Decision:
        """Lift an issued directive at its latest revision; a repeat under the same key is answered as before."""
        digest = request_digest("lift", {"directive_id": directive_id, "reason": reason})
        async with self._lock:
            self._check_ready()
            earlier = self.book.answered(key, digest)
            if earlier is not None:
                return Decision(earlier, "replayed")
            revision = self.book.revision_to_lift(directive_id)
            event = DirectiveLifted(
                producer=SERVICE,
                correlation_id=directive_id,
                directive_id=directive_id,
                revision=revision,
                reason=reason,
                idempotency_key=key,
                request_digest=digest if key is not None else None,
            )
            await self._publish_or_fail(event)
            self.book.apply(event)
            return Decision(event, "published")

    async def _publish_or_fail(self, event: DirectiveEvent) -> None:
        try:
            await self._publish(event)
        except Exception as exc:  # timeout, broker down, authorisation: the caller may retry
            raise PublishFailed(f"could not publish {event.type} for {event.directive_id!r}: {exc!r}") from exc

    def _check_ready(self) -> None:
        if not self.ready:
            raise NotReady("intake is still reading the directives issued so far; retry shortly")
