"""HTTP API of intake: submit, amend, lift and read directives."""

from __future__ import annotations

from typing import Any, Literal

import structlog
from fastapi import Body, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.intake.book import DirectiveAlreadyLifted, DirectiveEntry, UnknownDirective
from services.intake.desk import DirectiveDesk, NotReady, PublishFailed
from services.intake.request import LiftRequest
from shared.contracts.directives import DirectiveRequest, DirectiveScope
from shared.runtime.http import Failure, checked_directive_id, failure, install_problem_handlers

log = structlog.get_logger(service="intake")


class Accepted(BaseModel):
    """A directive event was published and acknowledged by the broker."""

    directive_id: str
    revision: int
    event_id: str


class DirectiveSummary(BaseModel):
    """One directive as intake knows it."""

    directive_id: str
    revision: int = Field(..., description="Latest revision.")
    state: Literal["issued", "lifted"]
    title: str


class DirectiveDetail(DirectiveSummary):
    """One directive with its latest scope."""

    authority: str
    scope: DirectiveScope | None
    issued_event_id: str | None
    lift_reason: str


def create_api(desk: DirectiveDesk) -> FastAPI:
    """The FastAPI app over a desk."""
    api = FastAPI(title="Countermand intake", version="1",
                  description="Issue, amend and lift directives; each becomes a directive event.")
    _add_error_handlers(api)

    @api.post("/directives", status_code=202, response_model=Accepted,
              responses={409: {"model": Failure}, 422: {"model": Failure}, 503: {"model": Failure}})
    async def issue_directive(request: DirectiveRequest) -> Accepted:
        """Issue a directive (new id: revision 1) or amend an issued one (latest revision + 1)."""
        event = await desk.issue(request)
        log.info("directive issued", directive_id=event.directive_id, revision=event.revision,
                 event_id=event.event_id)
        return Accepted(directive_id=event.directive_id, revision=event.revision, event_id=event.event_id)

    @api.post("/directives/{directive_id}/lift", status_code=202, response_model=Accepted,
              responses={404: {"model": Failure}, 409: {"model": Failure}, 422: {"model": Failure}})
    async def lift_directive(directive_id: str = Depends(checked_directive_id),
                             request: LiftRequest | None = Body(None)) -> Accepted:
        """Lift an issued directive at its latest revision."""
        event = await desk.lift(directive_id, (request or LiftRequest()).reason)
        log.info("directive lifted", directive_id=directive_id, revision=event.revision, event_id=event.event_id)
        return Accepted(directive_id=directive_id, revision=event.revision, event_id=event.event_id)

    @api.get("/directives", response_model=list[DirectiveSummary])
    async def list_directives() -> list[DirectiveSummary]:
        """Every directive intake knows, by id."""
        return [DirectiveSummary(**_summary(e)) for e in desk.book.entries()]

    @api.get("/directives/{directive_id}", response_model=DirectiveDetail, responses={404: {"model": Failure}})
    async def show_directive(directive_id: str = Depends(checked_directive_id)) -> DirectiveDetail:
        """One directive with its latest scope."""
        entry = desk.book.get(directive_id)
        return DirectiveDetail(**_summary(entry), authority=entry.authority, lift_reason=entry.lift_reason,
                               scope=entry.issued.scope if entry.issued else None,
                               issued_event_id=entry.issued.event_id if entry.issued else None)

    @api.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @api.get("/readyz", responses={503: {"description": "Not caught up with the directive topic yet."}})
    async def readyz() -> JSONResponse:
        """Ready once the directive view has read the topic up to where it ended at startup."""
        return JSONResponse({"ready": desk.ready}, status_code=200 if desk.ready else 503)

    return api


def _summary(entry: DirectiveEntry) -> dict[str, Any]:
    return {"directive_id": entry.directive_id, "revision": entry.revision, "state": entry.state,
            "title": entry.title}


def _add_error_handlers(api: FastAPI) -> None:
    install_problem_handlers(api)

    @api.exception_handler(UnknownDirective)
    async def unknown(_: Request, exc: UnknownDirective) -> JSONResponse:
        return failure(404, str(exc))

    @api.exception_handler(DirectiveAlreadyLifted)
    async def lifted(_: Request, exc: DirectiveAlreadyLifted) -> JSONResponse:
        return failure(409, str(exc))

    @api.exception_handler(NotReady)
    async def not_ready(_: Request, exc: NotReady) -> JSONResponse:
        return failure(503, str(exc))

    @api.exception_handler(PublishFailed)
    async def not_published(_: Request, exc: PublishFailed) -> JSONResponse:
        log.error("publish failed", error=str(exc))
        return failure(503, str(exc))

