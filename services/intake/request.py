"""What a person submits besides a directive (that is shared.contracts.directives.DirectiveRequest): a lift's
reason, an approval, a rejection."""

from __future__ import annotations

from pydantic import Field

from shared.contracts.directives import LiftReason, Reason
from shared.contracts.envelope import Message


class LiftRequest(Message):
    """Why a directive is lifted."""

    reason: LiftReason = ""


class ApprovalRequest(Message):
    """An approval of a proposal, with an optional note."""

    reason: Reason = ""


class RejectionRequest(Message):
    """A rejection of a proposal: the reason is required and recorded."""

    reason: Reason = Field(..., min_length=1, description="Why it is rejected.", examples=["Scope too wide"])
