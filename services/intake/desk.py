"""The intake desk: proposes, approves, rejects, issues and lifts directives against the book, one decision at a
time. Four eyes: a directive, an amendment or a lift is proposed by one subject and takes effect once approved
by enough others; the emergency role may act alone, with a reason on record.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from services.intake.book import AnyDirectiveEvent, CatchUp, DirectiveBook, IdempotencyKeyReused, UnknownDirective
from services.intake.proposals import Proposal, Proposals, Refused, check_emergency_reason
from shared.contracts.directives import (
    DirectiveIssued,
    DirectiveLifted,
    DirectiveProposed,
    DirectiveRequest,
    ProposalApproved,
    ProposalRejected,
)
from shared.contracts.envelope import envelope, utc_now

SERVICE = "intake"
DirectiveEvent = AnyDirectiveEvent
# Publishes one event; returns once the broker acknowledged it (with its offset when known). Before it commits, a
# publisher shared with other instances calls DirectiveDesk.confirm() with the view caught up to the event's offset.
Publish = Callable[[DirectiveEvent], Awaitable[int | None]]
Outcome = Literal["published", "replayed", "unchanged"]
DEFAULT_TTL = timedelta(hours=24)


class NotReady(Exception):
    """The directive view has not caught up yet, so revisions cannot be assigned safely."""


class PublishFailed(Exception):
    """The broker did not acknowledge the directive event; the book is unchanged."""


class Conflict(Refused):
    """Another instance published for the same directive first; nothing was published for this request."""

    status = 409

    def __init__(self, directive_id: str, revision: int, first: DirectiveEvent) -> None:
        super().__init__(
            f"directive {directive_id!r} changed while this request was decided: {first.type} {first.event_id} "
            f"was published meanwhile and the directive is at revision {revision}; nothing was published for this "
            "request: read the directive and send it again"
        )
        self.directive_id = directive_id
        self.revision = revision


class AlreadyAnswered(Exception):
    """The same request under the same Idempotency-Key was answered first (by another instance)."""

    def __init__(self, event: DirectiveEvent) -> None:
        super().__init__(f"already answered with {event.event_id}")
        self.event = event


class NotYours(Refused):
    """Only an approver, or the proposer withdrawing it, may reject a proposal."""

    status = 403


@dataclass(frozen=True)
class Decision:
    """What a request came to: a new event published, an earlier answer replayed (same Idempotency-Key and
    request), or nothing to do (the directive already says exactly this)."""

    event: DirectiveEvent
    outcome: Outcome


@dataclass(frozen=True)
class Mandate:
    """Who a directive event is issued or lifted on behalf of (see shared.contracts.directives.Accountable)."""

    proposed_by: str
    approved_by: tuple[str, ...] = ()
    proposal: DirectiveProposed | None = None
    emergency_reason: str = ""

    @property
    def cause(self) -> str | None:
        """The event that caused the directive event: the proposal, when there was one."""
        return self.proposal.event_id if self.proposal else None

    def fields(self) -> dict[str, Any]:
        return {
            "proposal_id": self.proposal.proposal_id if self.proposal else None,
            "proposed_by": self.proposed_by,
            "proposed_at": self.proposal.occurred_at if self.proposal else None,
            "approved_by": list(self.approved_by),
            "emergency": bool(self.emergency_reason),
            "emergency_reason": self.emergency_reason,
        }


def request_digest(action: str, request: dict[str, Any]) -> str:
    """SHA-256 of a request as validated (so formatting and defaults make no difference), per action."""
    canonical = json.dumps({"action": action, "request": request}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def new_proposal_id() -> str:
    """A fresh proposal id, short enough to type (`countermand directive approve p-...`)."""
    return f"p-{uuid.uuid4().hex[:12]}"


class DirectiveDesk:
    """Assigns revisions from the book, keeps the four-eyes rules, publishes, and records what it published."""

    def __init__(
        self,
        publish: Publish,
        *,
        approvals_needed: int = 1,
        proposal_ttl: timedelta = DEFAULT_TTL,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.book = DirectiveBook()
        self.proposals = Proposals()
        self.approvals_needed = approvals_needed
        self.proposal_ttl = proposal_ttl
        self._clock = clock
        self._publish = publish
        self._catch_up: CatchUp | None = None
        self._event_ids: set[str] = set()
        self._changes: dict[str, int] = {}  # directive id -> distinct events seen for it
        self._latest: dict[str, DirectiveEvent] = {}  # directive id -> the last new event seen for it
        self._deciding: tuple[DirectiveEvent, int] | None = None  # the event being published, on this basis
        # Revision assignment and its publish form one step per process, so two requests for the same
        # id cannot both take revision n + 1 (nor one key two events); across instances, confirm() decides.
        self._lock = asyncio.Lock()

    def expect(self, end_offsets: dict[int, int]) -> None:
        """The end offsets of the directive topic when this instance started."""
        self._catch_up = CatchUp(end_offsets)

    @property
    def ready(self) -> bool:
        return self._catch_up is not None and self._catch_up.caught_up

    def now(self) -> datetime:
        return self._clock()

    def record(self, event: DirectiveEvent | None, partition: int, offset: int) -> None:
        """A record read from the directive topic (None when it was not a valid directive event)."""
        if event is not None:
            self._apply(event)
        if self._catch_up is not None:
            self._catch_up.saw(partition, offset)

    def reached(self, partition: int, position: int) -> None:
        """A reader's position on the directive topic: every committed record before it was recorded (transaction
        markers and aborted records included, which no record delivered shows)."""
        if self._catch_up is not None:
            self._catch_up.reached(partition, position)

    def _apply(self, event: DirectiveEvent) -> None:
        if event.event_id not in self._event_ids:  # the view and the arbiter may both read a record
            self._event_ids.add(event.event_id)
            self._changes[event.directive_id] = self._changes.get(event.directive_id, 0) + 1
            self._latest[event.directive_id] = event
        self.book.apply(event)
        self.proposals.apply(event)

    # --- proposals -------------------------------------------------------------------------------------------

    async def propose(self, request: DirectiveRequest, by: str, key: str | None = None) -> Decision:
        """Propose a new directive or an amendment; nothing is in force until someone else approves it."""
        digest = request_digest("propose", {"request": request.model_dump(mode="json"), "by": by})
        async with self._lock:
            earlier = self._earlier(key, digest)
            if earlier is not None:
                return earlier
            current = self.book.current_issue_if_same(request)
            if current is not None:
                return Decision(current, "unchanged")
            base = self.book.revision_now(request.directive_id)
            fields = {"title": request.title, "authority": request.authority, "scope": request.scope}
            return await self._proposed(request.directive_id, "issue", base, by, key, digest, fields)

    async def propose_lift(self, directive_id: str, reason: str, by: str, key: str | None = None) -> Decision:
        """Propose lifting an issued directive at its latest revision."""
        digest = request_digest("propose-lift", {"directive_id": directive_id, "reason": reason, "by": by})
        async with self._lock:
            earlier = self._earlier(key, digest)
            if earlier is not None:
                return earlier
            base = self.book.revision_to_lift(directive_id)
            return await self._proposed(directive_id, "lift", base, by, key, digest, {"reason": reason})

    async def _proposed(
        self,
        directive_id: str,
        action: Literal["issue", "lift"],
        base: int,
        by: str,
        key: str | None,
        digest: str,
        fields: dict[str, Any],
    ) -> Decision:
        now = self.now()
        event = DirectiveProposed(
            **self._stamp(directive_id, None, key, digest, now),
            proposal_id=new_proposal_id(),
            directive_id=directive_id,
            action=action,
            base_revision=base,
            proposed_by=by,
            expires_at=now + self.proposal_ttl,
            approvals_needed=self.approvals_needed,
            **fields,
        )
        same = self.proposals.same_or_none(event, now)  # one open proposal per directive
        return Decision(same, "unchanged") if same is not None else await self._published(event)

    async def approve(self, proposal_id: str, by: str, reason: str = "", key: str | None = None) -> Decision:
        """Approve a proposal; the last approval it needs issues or lifts the directive."""
        digest = request_digest("approve", {"proposal_id": proposal_id, "reason": reason, "by": by})
        async with self._lock:
            earlier = self._earlier(key, digest)
            if earlier is not None:
                return earlier
            proposed = self.proposals.get(proposal_id).proposed
            revision = self.book.revision_now(proposed.directive_id)
            proposal = self.proposals.check_approval(proposal_id, by, self.now(), revision)
            approvers = (*proposal.approvers, by)
            if len(approvers) < proposed.approvals_needed:
                return await self._published(
                    ProposalApproved(
                        **self._stamp(proposed.directive_id, proposed.event_id, key, digest),
                        proposal_id=proposal_id,
                        directive_id=proposed.directive_id,
                        approved_by=by,
                        reason=reason,
                    )
                )
            return await self._enact(proposal, Mandate(proposed.proposed_by, approvers, proposed), key, digest)

    async def reject(
        self, proposal_id: str, by: str, reason: str, key: str | None = None, *, as_approver: bool = True
    ) -> Decision:
        """Reject a proposal (an approver), or withdraw it (its proposer); it can no longer be approved."""
        digest = request_digest("reject", {"proposal_id": proposal_id, "reason": reason, "by": by})
        async with self._lock:
            earlier = self._earlier(key, digest)
            if earlier is not None:
                return earlier
            proposed = self.proposals.check_rejection(proposal_id, self.now()).proposed
            if not as_approver and by != proposed.proposed_by:
                raise NotYours(f"only an approver or its proposer ({proposed.proposed_by}) may reject {proposal_id}")
            return await self._published(
                ProposalRejected(
                    **self._stamp(proposed.directive_id, proposed.event_id, key, digest),
                    proposal_id=proposal_id,
                    directive_id=proposed.directive_id,
                    rejected_by=by,
                    reason=reason,
                )
            )

    def pending(self) -> list[Proposal]:
        """Proposals awaiting approval now."""
        return self.proposals.pending(self.now())

    # --- emergency: the emergency role acting alone ----------------------------------------------------------

    async def issue(self, request: DirectiveRequest, mandate: Mandate, key: str | None = None) -> Decision:
        """Issue or amend a directive at once on this mandate (the emergency role's, with its reason)."""
        check_emergency_reason(mandate.emergency_reason)
        payload = {"request": request.model_dump(mode="json"), "by": mandate.proposed_by}
        digest = request_digest("issue", {**payload, "emergency_reason": mandate.emergency_reason})
        async with self._lock:
            earlier = self._earlier(key, digest)
            if earlier is not None:
                return earlier
            current = self.book.current_issue_if_same(request)
            if current is not None:
                return Decision(current, "unchanged")
            return await self._published(self._issued(request, mandate, key, digest))

    async def lift(self, directive_id: str, reason: str, mandate: Mandate, key: str | None = None) -> Decision:
        """Lift an issued directive at once on this mandate (the emergency role's, with its reason)."""
        check_emergency_reason(mandate.emergency_reason)
        payload = {"directive_id": directive_id, "reason": reason, "by": mandate.proposed_by}
        digest = request_digest("lift", {**payload, "emergency_reason": mandate.emergency_reason})
        async with self._lock:
            earlier = self._earlier(key, digest)
            if earlier is not None:
                return earlier
            return await self._published(self._lifted(directive_id, reason, mandate, key, digest))

    # --- the events that put a directive in force or lift it --------------------------------------------------

    async def _enact(self, proposal: Proposal, mandate: Mandate, key: str | None, digest: str) -> Decision:
        proposed = proposal.proposed
        if proposed.action == "lift":
            return await self._published(self._lifted(proposed.directive_id, proposed.reason, mandate, key, digest))
        assert proposed.title is not None and proposed.scope is not None  # DirectiveProposed checks it
        request = DirectiveRequest(
            directive_id=proposed.directive_id, title=proposed.title, authority=proposed.authority, scope=proposed.scope
        )
        return await self._published(self._issued(request, mandate, key, digest))

    def _issued(self, request: DirectiveRequest, mandate: Mandate, key: str | None, digest: str) -> DirectiveIssued:
        return DirectiveIssued(
            **self._stamp(request.directive_id, mandate.cause, key, digest),
            directive_id=request.directive_id,
            revision=self.book.next_revision(request.directive_id),
            title=request.title,
            authority=request.authority,
            scope=request.scope,
            **mandate.fields(),
        )

    def _lifted(
        self, directive_id: str, reason: str, mandate: Mandate, key: str | None, digest: str
    ) -> DirectiveLifted:
        return DirectiveLifted(
            **self._stamp(directive_id, mandate.cause, key, digest),
            directive_id=directive_id,
            revision=self.book.revision_to_lift(directive_id),
            reason=reason,
            **mandate.fields(),
        )

    def _stamp(
        self, directive_id: str, cause: str | None, key: str | None, digest: str, at: datetime | None = None
    ) -> dict[str, Any]:
        """The envelope and idempotency fields of an event intake publishes for one request."""
        return {
            **envelope(SERVICE, occurred_at=at or self.now(), correlation_id=directive_id, causation_id=cause),
            "idempotency_key": key,
            "request_digest": digest if key is not None else None,
        }

    # --- one step: replay, publish, record ---------------------------------------------------------------------

    def _earlier(self, key: str | None, digest: str) -> Decision | None:
        """Checks readiness, then the earlier answer to a request under this key (None: a new request)."""
        if not self.ready:
            raise NotReady("intake is still reading the directives issued so far; retry shortly")
        earlier = self.book.answered(key, digest)
        return Decision(earlier, "replayed") if earlier is not None else None

    async def _published(self, event: DirectiveEvent) -> Decision:
        # Nothing awaited since the decision was taken: the basis is what it was decided on.
        self._deciding = (event, self._changes.get(event.directive_id, 0))
        try:
            await self._publish(event)
        except AlreadyAnswered as answered:
            return Decision(answered.event, "replayed")
        except (Refused, IdempotencyKeyReused):
            raise
        except Exception as exc:  # timeout, broker down, authorisation: the caller may retry
            raise PublishFailed(f"could not publish {event.type} for {event.directive_id!r}: {exc!r}") from exc
        finally:
            self._deciding = None
        self._apply(event)
        return Decision(event, "published")

    def confirm(self) -> None:
        """Called by a publisher shared with other instances once this view has read every committed record that
        precedes the event being published: Conflict when anything was published for its directive since the
        decision (the caller aborts), AlreadyAnswered when the same keyed request was answered meanwhile."""
        if self._deciding is None:
            raise RuntimeError("confirm() outside a publish")
        event, basis = self._deciding
        earlier = self.book.answered(event.idempotency_key, event.request_digest or "")
        if earlier is not None:
            raise AlreadyAnswered(earlier)
        if self._changes.get(event.directive_id, 0) != basis:
            first = self._latest[event.directive_id]
            raise Conflict(event.directive_id, self._revision_of(event.directive_id), first)

    def _revision_of(self, directive_id: str) -> int:
        try:
            return self.book.get(directive_id).revision
        except UnknownDirective:
            return 0
