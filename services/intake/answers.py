"""What intake answers: a write's outcome (Accepted), a proposal (ProposalView), the caller's recorded subject."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.intake.desk import Decision, DirectiveDesk
from services.intake.proposals import Proposal, ProposalState
from shared.contracts.directives import DirectiveIssued, DirectiveLifted, DirectiveProposed, DirectiveScope
from shared.contracts.limits import SUBJECT_CHARS
from shared.runtime.auth import AuthError, Principal


class Accepted(BaseModel):
    """What a request came to: a proposal recorded (awaiting approval), or a directive event published."""

    directive_id: str
    revision: int = Field(..., description="The directive's revision (a proposal: the revision it would become).")
    event_id: str
    state: Literal["proposed", "rejected", "issued", "lifted"] = Field(
        ..., description="proposed: awaiting approval; issued / lifted: in force; rejected: closed."
    )
    unchanged: bool = Field(
        False,
        description="True when the directive already said exactly this: nothing was "
        "published, the answer names its current revision.",
    )
    proposal_id: str | None = Field(None, description="The proposal, to approve or reject it.")
    proposed_by: str | None = None
    approved_by: list[str] = Field(default_factory=list, description="Approvals so far, in order.")
    approvals_needed: int | None = Field(None, description="Approvals the proposal takes.")
    expires_at: datetime | None = Field(None, description="When the proposal lapses unless approved.")
    emergency: bool = Field(False, description="Issued or lifted by the emergency role alone.")


class ProposalView(BaseModel):
    """A proposal and where it stands."""

    proposal_id: str
    directive_id: str
    action: Literal["issue", "lift"]
    state: ProposalState
    revision: int = Field(..., description="The revision it would issue (or lift) once approved.")
    title: str | None
    scope: DirectiveScope | None
    reason: str
    proposed_by: str
    proposed_at: str
    expires_at: str
    approvals_needed: int
    approved_by: list[str]
    rejected_by: str | None = None
    rejection_reason: str = ""


def proposal_view(proposal: Proposal, state: ProposalState) -> ProposalView:
    proposed = proposal.proposed
    return ProposalView(
        proposal_id=proposed.proposal_id,
        directive_id=proposed.directive_id,
        action=proposed.action,
        state=state,
        revision=_target(proposed),
        title=proposed.title,
        scope=proposed.scope,
        reason=proposed.reason,
        proposed_by=proposed.proposed_by,
        proposed_at=proposed.occurred_at.isoformat(),
        expires_at=proposed.expires_at.isoformat(),
        approvals_needed=proposed.approvals_needed,
        approved_by=proposal.approvers,
        rejected_by=proposal.rejection.rejected_by if proposal.rejection else None,
        rejection_reason=proposal.rejection.reason if proposal.rejection else "",
    )


def _target(proposed: DirectiveProposed) -> int:
    return proposed.base_revision + 1 if proposed.action == "issue" else proposed.base_revision


def answer_of(desk: DirectiveDesk, decision: Decision) -> JSONResponse:
    """The answer to a write: 202 for what was published (200 when unchanged), replays marked as such."""
    body = _accepted(desk, decision)
    body["unchanged"] = decision.outcome == "unchanged"
    status = 200 if decision.outcome == "unchanged" else 202
    headers = {"Idempotent-Replayed": "true"} if decision.outcome == "replayed" else None
    return JSONResponse(body, status_code=status, headers=headers)


def _accepted(desk: DirectiveDesk, decision: Decision) -> dict[str, Any]:
    event = decision.event
    if isinstance(event, DirectiveIssued | DirectiveLifted):
        return {
            "directive_id": event.directive_id,
            "revision": event.revision,
            "event_id": event.event_id,
            "state": "issued" if isinstance(event, DirectiveIssued) else "lifted",
            "proposal_id": event.proposal_id,
            "proposed_by": event.proposed_by,
            "approved_by": list(event.approved_by),
            "approvals_needed": None,
            "expires_at": None,
            "emergency": event.emergency,
        }
    proposal = desk.proposals.get(event.proposal_id)
    proposed = proposal.proposed
    return {
        "directive_id": event.directive_id,
        "revision": _target(proposed),
        "event_id": event.event_id,
        "state": "proposed" if proposal.rejection is None else "rejected",
        "proposal_id": proposed.proposal_id,
        "proposed_by": proposed.proposed_by,
        "approved_by": proposal.approvers,
        "approvals_needed": proposed.approvals_needed,
        "expires_at": proposed.expires_at.isoformat(),
        "emergency": False,
    }


def subject_of(caller: Principal) -> str:
    """The caller's subject as events record it; a subject too long to record is refused."""
    if len(caller.subject) > SUBJECT_CHARS:
        raise AuthError(403, f"subject longer than {SUBJECT_CHARS} characters cannot be recorded", caller.subject[:64])
    return caller.subject
