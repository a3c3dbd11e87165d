"""Intake's HTTP routes for four eyes: pending proposals, approve, reject."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import Depends, FastAPI, Path, Request
from fastapi.responses import JSONResponse

from services.intake.answers import Accepted, ProposalView, answer_of, proposal_view, subject_of
from services.intake.desk import DirectiveDesk
from services.intake.request import ApprovalRequest, RejectionRequest
from shared.contracts.directives import PROPOSAL_ID_PATTERN
from shared.runtime.auth import Guard, Principal, Role
from shared.runtime.http import Failure, checked_idempotency_key, request_body_schema, validated_body
from shared.runtime.request_body import json_body

log = structlog.get_logger(service="intake")
ProposalIdPath = Path(..., pattern=PROPOSAL_ID_PATTERN, description="Id of the proposal.")


def add_proposal_routes(
    api: FastAPI, desk: DirectiveDesk, guard: Guard, readers: tuple[Role, ...], refusals: dict[int | str, Any]
) -> None:
    """GET /proposals, GET /proposals/{id}, POST /proposals/{id}/approve and /reject."""
    writes = {
        **refusals,
        400: {"model": Failure},
        404: {"model": Failure},
        409: {"model": Failure},
        422: {"model": Failure},
        503: {"model": Failure},
    }

    @api.get("/proposals", response_model=list[ProposalView], responses=refusals)
    async def list_proposals(_: Principal = Depends(guard.requires(*readers)), all: bool = False) -> list[ProposalView]:
        """Proposals awaiting approval, oldest first (`all=true`: every proposal, whatever became of it)."""
        now = desk.now()
        chosen = desk.proposals.all() if all else desk.pending()
        return [proposal_view(p, p.state(now)) for p in chosen]

    @api.get("/proposals/{proposal_id}", response_model=ProposalView, responses={**refusals, 404: {"model": Failure}})
    async def show_proposal(
        _: Principal = Depends(guard.requires(*readers)), proposal_id: str = ProposalIdPath
    ) -> ProposalView:
        """One proposal and where it stands."""
        proposal = desk.proposals.get(proposal_id)
        return proposal_view(proposal, proposal.state(desk.now()))

    @api.post(
        "/proposals/{proposal_id}/approve",
        status_code=202,
        response_model=Accepted,
        openapi_extra=request_body_schema(ApprovalRequest, required=False),
        responses=writes,
    )
    async def approve(
        http: Request,
        caller: Principal = Depends(guard.requires(Role.APPROVER)),
        proposal_id: str = ProposalIdPath,
        key: str | None = Depends(checked_idempotency_key),
    ) -> JSONResponse:
        """Approve a proposal made by someone else; the last approval it needs issues (or lifts) the directive.
        A repeat under the same Idempotency-Key is answered as the first time."""
        request = validated_body(ApprovalRequest, await json_body(http, required=False) or {})
        decision = await desk.approve(proposal_id, subject_of(caller), request.reason, key)
        log.info("proposal approved", proposal_id=proposal_id, subject=caller.subject, type=decision.event.type)
        return answer_of(desk, decision)

    @api.post(
        "/proposals/{proposal_id}/reject",
        status_code=202,
        response_model=Accepted,
        openapi_extra=request_body_schema(RejectionRequest),
        responses=writes,
    )
    async def reject(
        http: Request,
        caller: Principal = Depends(guard.requires(Role.APPROVER, Role.PROPOSER)),
        proposal_id: str = ProposalIdPath,
        key: str | None = Depends(checked_idempotency_key),
    ) -> JSONResponse:
        """Reject a proposal (an approver) or withdraw it (its proposer), with a reason on record."""
        request = validated_body(RejectionRequest, await json_body(http))
        decision = await desk.reject(
            proposal_id, subject_of(caller), request.reason, key, as_approver=Role.APPROVER in caller.roles
        )
        log.info("proposal rejected", proposal_id=proposal_id, subject=caller.subject)
        return answer_of(desk, decision)
