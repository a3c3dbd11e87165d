"""Four eyes: proposals of directives, amendments and lifts, their approvals and rejections, and the rules.

Pure: no Kafka, no clock, no I/O (time comes in as an argument). Built from directive events in any order:
a proposal, each approval, its rejection and the directive event that enacts it are kept apart and the
proposal's state is derived from them, so a replay or a reordering gives the same answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from shared.contracts.directives import (
    DirectiveIssued,
    DirectiveLifted,
    DirectiveProposed,
    ProposalApproved,
    ProposalRejected,
)

ProposalState = Literal["pending", "approved", "rejected", "expired"]
Enacting = DirectiveIssued | DirectiveLifted


class Refused(Exception):
    """A proposal action refused; `status` is the HTTP status that says why, `str()` the reason shown."""

    status = 409


class UnknownProposal(Refused, LookupError):
    """No proposal with this id was ever made."""

    status = 404

    def __init__(self, proposal_id: str) -> None:
        super().__init__(f"proposal {proposal_id!r} is not known")


class ProposalClosed(Refused):
    """The proposal was already approved, rejected, or it expired."""


class OwnProposal(Refused):
    """The proposer tried to approve their own proposal."""

    status = 403


class AlreadyApproved(Refused):
    """This subject approved the proposal before; approvals must come from distinct subjects."""


class StaleProposal(Refused):
    """The directive moved on (another revision or a lift) since the proposal was made."""


class ProposalPending(Refused):
    """Another proposal for the same directive is still open."""


class EmergencyWithoutReason(Refused):
    """The emergency role acts alone only with a reason on record."""

    status = 422


@dataclass(frozen=True)
class Proposal:
    """A proposal with what happened to it so far."""

    proposed: DirectiveProposed
    approvals: tuple[ProposalApproved, ...]
    rejection: ProposalRejected | None
    enacted: Enacting | None

    @property
    def proposal_id(self) -> str:
        return self.proposed.proposal_id

    @property
    def approvers(self) -> list[str]:
        """Who approved it so far, in order (the enacting event names them all)."""
        return list(self.enacted.approved_by) if self.enacted else [a.approved_by for a in self.approvals]

    def state(self, now: datetime) -> ProposalState:
        if self.enacted is not None:
            return "approved"
        if self.rejection is not None:
            return "rejected"
        return "expired" if now >= self.proposed.expires_at else "pending"


class Proposals:
    """Every proposal intake has seen, with its approvals, rejection and enacting event."""

    def __init__(self) -> None:
        self._proposed: dict[str, DirectiveProposed] = {}
        self._approvals: dict[str, dict[str, ProposalApproved]] = {}
        self._rejections: dict[str, ProposalRejected] = {}
        self._enacted: dict[str, Enacting] = {}

    def apply(self, event: DirectiveProposed | ProposalApproved | ProposalRejected | Enacting) -> None:
        """Record an event; a replay changes nothing (the first approval by a subject is the one kept)."""
        if isinstance(event, DirectiveProposed):
            self._proposed.setdefault(event.proposal_id, event)
        elif isinstance(event, ProposalApproved):
            self._approvals.setdefault(event.proposal_id, {}).setdefault(event.approved_by, event)
        elif isinstance(event, ProposalRejected):
            self._rejections.setdefault(event.proposal_id, event)
        elif event.proposal_id is not None:
            self._enacted.setdefault(event.proposal_id, event)

    def get(self, proposal_id: str) -> Proposal:
        """One proposal; UnknownProposal when it was never made."""
        proposed = self._proposed.get(proposal_id)
        if proposed is None:
            raise UnknownProposal(proposal_id)
        approvals = sorted(self._approvals.get(proposal_id, {}).values(), key=lambda a: a.occurred_at)
        return Proposal(proposed, tuple(approvals), self._rejections.get(proposal_id), self._enacted.get(proposal_id))

    def all(self) -> list[Proposal]:
        """Every proposal, oldest first."""
        return sorted((self.get(p) for p in self._proposed), key=lambda p: p.proposed.occurred_at)

    def pending(self, now: datetime) -> list[Proposal]:
        """The proposals still awaiting approval, oldest first."""
        return [p for p in self.all() if p.state(now) == "pending"]

    def open_for(self, directive_id: str, now: datetime) -> Proposal | None:
        """The proposal for this directive still awaiting approval, if any (there is at most one)."""
        return next((p for p in self.pending(now) if p.proposed.directive_id == directive_id), None)

    def same_or_none(self, candidate: DirectiveProposed, now: datetime) -> DirectiveProposed | None:
        """The open proposal when it proposes exactly `candidate` by the same person (a repeat: answered with it);
        None when the directive has no open proposal; ProposalPending when it has another one."""
        open_ = self.open_for(candidate.directive_id, now)
        if open_ is None:
            return None
        mine = open_.proposed
        if _content(mine) == _content(candidate):
            return mine
        raise ProposalPending(
            f"directive {candidate.directive_id!r} already has an open proposal {mine.proposal_id} "
            f"(by {mine.proposed_by}): approve or reject it first"
        )

    def check_approval(self, proposal_id: str, subject: str, now: datetime, revision: int) -> Proposal:
        """The proposal `subject` may approve now, the directive being at `revision`; else why not."""
        proposal = self._open(proposal_id, now, "approved")
        if subject == proposal.proposed.proposed_by:
            raise OwnProposal(f"{subject} proposed {proposal_id} and cannot approve it: another person must")
        if subject in proposal.approvers:
            raise AlreadyApproved(f"{subject} already approved {proposal_id}; it needs another person's approval")
        if revision != proposal.proposed.base_revision:
            raise StaleProposal(
                f"directive {proposal.proposed.directive_id!r} changed since {proposal_id} was proposed "
                f"(revision {proposal.proposed.base_revision} then, {revision} now): propose again"
            )
        return proposal

    def check_rejection(self, proposal_id: str, now: datetime) -> Proposal:
        """The proposal that may be rejected now; else why not."""
        return self._open(proposal_id, now, "rejected")

    def _open(self, proposal_id: str, now: datetime, verb: str) -> Proposal:
        proposal = self.get(proposal_id)
        state = proposal.state(now)
        if state == "expired":
            raise ProposalClosed(
                f"proposal {proposal_id} expired at {proposal.proposed.expires_at.isoformat()} and cannot be "
                f"{verb}: propose again"
            )
        if state != "pending":
            raise ProposalClosed(f"proposal {proposal_id} was already {state}")
        return proposal


def _content(proposed: DirectiveProposed) -> tuple:
    return (
        proposed.action,
        proposed.base_revision,
        proposed.title,
        proposed.authority,
        proposed.scope,
        proposed.reason,
        proposed.proposed_by,
    )


def check_emergency_reason(reason: str) -> str:
    """The reason an emergency action is recorded with; EmergencyWithoutReason when blank."""
    if not reason.strip():
        raise EmergencyWithoutReason("emergency_reason: an emergency action alone needs a reason on record")
    return reason.strip()
