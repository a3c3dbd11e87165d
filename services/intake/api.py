"""HTTP API of intake: propose, approve, reject, issue in an emergency, lift and read directives.

Every endpoint but health names the roles it needs (shared.runtime.auth.Guard); four eyes are kept by the
desk (services.intake.desk): a proposal takes effect once someone other than its proposer approves it.
"""

from __future__ import annotations

from typing import Any, Literal

import structlog
from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.intake.answers import Accepted, answer_of, subject_of
from services.intake.book import DirectiveAlreadyLifted, DirectiveEntry, IdempotencyKeyReused, UnknownDirective
from services.intake.desk import Conflict, Decision, DirectiveDesk, Mandate, NotReady, PublishFailed
from services.intake.proposal_routes import add_proposal_routes
from services.intake.proposals import Refused
from services.intake.request import LiftRequest
from shared.contracts.directives import DirectiveRequest, DirectiveScope
from shared.runtime.auth import AuthError, Guard, Principal, Role
from shared.runtime.http import (
    Failure,
    checked_directive_id,
    checked_idempotency_key,
    document_bodies,
    failure,
    install_problem_handlers,
    request_body_schema,
    validated_body,
)
from shared.runtime.metrics import install_metrics
from shared.runtime.problems import Problem
from shared.runtime.request_body import BodyLimit, json_body

log = structlog.get_logger(service="intake")
READERS = (Role.VIEWER, Role.AUDITOR, Role.PROPOSER, Role.APPROVER, Role.EMERGENCY)
PROPOSERS = (Role.PROPOSER, Role.EMERGENCY)
REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"model": Failure, "description": "No credential, or an invalid one."},
    403: {"model": Failure, "description": "The caller lacks the role, or four eyes forbid it."},
}
EmergencyReason = Query(
    None,
    max_length=1000,
    description="Only for the emergency role: act alone, at once, with this reason on record (no approval).",
)


class DirectiveSummary(BaseModel):
    """One directive as intake knows it."""

    directive_id: str
    revision: int = Field(..., description="Latest revision.")
    state: Literal["issued", "lifted"]
    title: str


class DirectiveDetail(DirectiveSummary):
    """One directive with its latest scope and who put it in force."""

    authority: str
    scope: DirectiveScope | None
    issued_event_id: str | None
    lift_reason: str
    proposed_by: str | None = None
    approved_by: list[str] = Field(default_factory=list)
    emergency: bool = False
    emergency_reason: str = ""


def _emergency(caller: Principal, reason: str | None) -> Mandate | None:
    """The emergency mandate when asked for (None: a proposal); 403 without the emergency role."""
    if reason is None:
        return None
    if Role.EMERGENCY not in caller.roles:
        raise AuthError(403, "needs role emergency to act without an approval", caller.subject)
    return Mandate(subject_of(caller), emergency_reason=reason)


def create_api(desk: DirectiveDesk, guard: Guard) -> FastAPI:
    """The FastAPI app over a desk, behind a guard."""
    api = FastAPI(
        title="Countermand intake",
        version="1",
        description="Propose, approve, amend and lift directives; each step becomes a directive event.",
    )
    api.add_middleware(BodyLimit)
    document_bodies(api, DirectiveRequest, LiftRequest)
    guard.install(api)
    _add_error_handlers(api)

    @api.post(
        "/directives",
        status_code=202,
        response_model=Accepted,
        openapi_extra=request_body_schema(DirectiveRequest),
        responses={
            200: {"model": Accepted, "description": "Nothing to do: the directive already says this."},
            400: {"model": Failure},
            **REFUSALS,
            409: {"model": Failure},
            413: {"model": Failure},
            415: {"model": Failure},
            422: {"model": Failure},
            503: {"model": Failure},
        },
    )
    async def issue_directive(
        http: Request,
        caller: Principal = Depends(guard.requires(*PROPOSERS)),
        key: str | None = Depends(checked_idempotency_key),
        emergency_reason: str | None = EmergencyReason,
    ) -> JSONResponse:
        """Propose a directive (new id: revision 1) or an amendment (latest revision + 1); it is issued once
        someone other than the proposer approves it. The emergency role may issue alone with `emergency_reason`.

        With an Idempotency-Key, a repeat of the same request gets the original answer and a different request
        under the same key a 422; without one, a request the directive already says is answered 200, unchanged.
        """
        mandate = _emergency(caller, emergency_reason)
        request = validated_body(DirectiveRequest, await json_body(http))
        if mandate is None:
            decision = await desk.propose(request, subject_of(caller), key)
        else:
            decision = await desk.issue(request, mandate, key)
        _logged(decision, caller)
        return answer_of(desk, decision)

    @api.post(
        "/directives/{directive_id}/lift",
        status_code=202,
        response_model=Accepted,
        openapi_extra=request_body_schema(LiftRequest, required=False),
        responses={
            400: {"model": Failure},
            **REFUSALS,
            404: {"model": Failure},
            409: {"model": Failure},
            413: {"model": Failure},
            422: {"model": Failure},
        },
    )
    async def lift_directive(
        http: Request,
        caller: Principal = Depends(guard.requires(*PROPOSERS)),
        directive_id: str = Depends(checked_directive_id),
        key: str | None = Depends(checked_idempotency_key),
        emergency_reason: str | None = EmergencyReason,
    ) -> JSONResponse:
        """Propose lifting an issued directive at its latest revision (lifted once approved by someone else);
        the emergency role may lift alone with `emergency_reason`. A repeat under the same key is replayed."""
        mandate = _emergency(caller, emergency_reason)
        request = validated_body(LiftRequest, await json_body(http, required=False) or {})
        if mandate is None:
            decision = await desk.propose_lift(directive_id, request.reason, subject_of(caller), key)
        else:
            decision = await desk.lift(directive_id, request.reason, mandate, key)
        _logged(decision, caller)
        return answer_of(desk, decision)

    @api.get("/directives", response_model=list[DirectiveSummary], responses=REFUSALS)
    async def list_directives(_: Principal = Depends(guard.requires(*READERS))) -> list[DirectiveSummary]:
        """Every directive intake knows, by id."""
        return [DirectiveSummary(**_summary(e)) for e in desk.book.entries()]

    @api.get(
        "/directives/{directive_id}", response_model=DirectiveDetail, responses={**REFUSALS, 404: {"model": Failure}}
    )
    async def show_directive(
        _: Principal = Depends(guard.requires(*READERS)), directive_id: str = Depends(checked_directive_id)
    ) -> DirectiveDetail:
        """One directive with its latest scope and who put it in force."""
        entry = desk.book.get(directive_id)
        issued = entry.issued
        return DirectiveDetail(
            **_summary(entry),
            authority=entry.authority,
            lift_reason=entry.lift_reason,
            scope=issued.scope if issued else None,
            issued_event_id=issued.event_id if issued else None,
            proposed_by=issued.proposed_by if issued else None,
            approved_by=issued.approved_by if issued else [],
            emergency=issued.emergency if issued else False,
            emergency_reason=issued.emergency_reason if issued else "",
        )

    add_proposal_routes(api, desk, guard, READERS, REFUSALS)

    @api.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @api.get("/readyz", responses={503: {"description": "Not caught up with the directive topic yet."}})
    async def readyz() -> JSONResponse:
        """Ready once the directive view has read the topic up to where it ended at startup."""
        return JSONResponse({"ready": desk.ready}, status_code=200 if desk.ready else 503)

    install_metrics(api)
    return api


def _logged(decision: Decision, caller: Principal) -> None:
    event = decision.event
    level = log.warning if getattr(event, "emergency", False) else log.info
    level(
        "emergency action alone" if getattr(event, "emergency", False) else "directive request answered",
        type=event.type,
        directive_id=event.directive_id,
        proposal_id=getattr(event, "proposal_id", None),
        event_id=event.event_id,
        outcome=decision.outcome,
        subject=caller.subject,
    )


def _summary(entry: DirectiveEntry) -> dict[str, Any]:
    return {"directive_id": entry.directive_id, "revision": entry.revision, "state": entry.state, "title": entry.title}


def _add_error_handlers(api: FastAPI) -> None:
    install_problem_handlers(api)

    @api.exception_handler(UnknownDirective)
    async def unknown(_: Request, exc: UnknownDirective) -> JSONResponse:
        return failure(404, str(exc))

    @api.exception_handler(DirectiveAlreadyLifted)
    async def lifted(_: Request, exc: DirectiveAlreadyLifted) -> JSONResponse:
        return failure(409, str(exc))

    @api.exception_handler(IdempotencyKeyReused)
    async def key_reused(_: Request, exc: IdempotencyKeyReused) -> JSONResponse:
        return failure(422, str(exc), [Problem(field="Idempotency-Key", message=str(exc))])

    @api.exception_handler(NotReady)
    async def not_ready(_: Request, exc: NotReady) -> JSONResponse:
        return failure(503, str(exc))

    @api.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> JSONResponse:
        caller = getattr(request.state, "principal", None)  # set by the guard once the caller is known
        log.warning(
            "request refused",
            status=exc.status,
            reason=str(exc),
            subject=caller.subject if caller else None,
            method=request.method,
            path=request.url.path,
        )
        field = "emergency_reason" if exc.status == 422 else "proposal"
        return failure(exc.status, str(exc), [Problem(field=field, message=str(exc))])

    @api.exception_handler(Conflict)
    async def conflict(_: Request, exc: Conflict) -> JSONResponse:
        log.warning("request lost to an event published first", directive_id=exc.directive_id, revision=exc.revision)
        return failure(
            409, str(exc), [Problem(field="revision", message=f"the directive is at revision {exc.revision}")]
        )

    @api.exception_handler(PublishFailed)
    async def not_published(_: Request, exc: PublishFailed) -> JSONResponse:
        log.error("publish failed", error=str(exc))
        return failure(503, str(exc))
