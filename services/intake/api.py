"""HTTP API of intake: submit, amend, lift and read directives."""

from __future__ import annotations

from typing import Any, Literal

import structlog
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.intake.book import DirectiveAlreadyLifted, DirectiveEntry, IdempotencyKeyReused, UnknownDirective
from services.intake.desk import Decision, DirectiveDesk, NotReady, PublishFailed
from services.intake.request import LiftRequest
from shared.contracts.directives import DirectiveRequest, DirectiveScope
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
from shared.runtime.problems import Problem
from shared.runtime.request_body import BodyLimit, json_body

log = structlog.get_logger(service="intake")


class Accepted(BaseModel):
    """A directive event was published and acknowledged by the broker."""

    directive_id: str
    revision: int
    event_id: str
    unchanged: bool = Field(
        False,
        description="True when the directive already said exactly this: nothing was "
        "published, the answer names its current revision.",
    )


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
    api = FastAPI(
        title="Countermand intake",
        version="1",
        description="Issue, amend and lift directives; each becomes a directive event.",
    )
    api.add_middleware(BodyLimit)
    document_bodies(api, DirectiveRequest, LiftRequest)
    _add_error_handlers(api)

    @api.post(
        "/directives",
        status_code=202,
        response_model=Accepted,
        openapi_extra=request_body_schema(DirectiveRequest),
        responses={
            200: {"model": Accepted, "description": "Nothing to do: the directive already says this."},
            400: {"model": Failure},
            409: {"model": Failure},
            413: {"model": Failure},
            415: {"model": Failure},
            422: {"model": Failure},
            503: {"model": Failure},
        },
    )
    async def issue_directive(http: Request, key: str | None = Depends(checked_idempotency_key)) -> JSONResponse:
        """Issue a directive (new id: revision 1) or amend an issued one (latest revision + 1).

        With an Idempotency-Key, a repeat of the same request gets the original answer and a different request
        under the same key a 422; without one, a request the directive already says is answered 200, unchanged.
        """
        request = validated_body(DirectiveRequest, await json_body(http))
        decision = await desk.issue(request, key)
        log.info(
            "directive issued",
            directive_id=request.directive_id,
            revision=decision.event.revision,
            event_id=decision.event.event_id,
            outcome=decision.outcome,
        )
        return _answer(decision)

    @api.post(
        "/directives/{directive_id}/lift",
        status_code=202,
        response_model=Accepted,
        openapi_extra=request_body_schema(LiftRequest, required=False),
        responses={
            400: {"model": Failure},
            404: {"model": Failure},
            409: {"model": Failure},
            413: {"model": Failure},
            422: {"model": Failure},
        },
    )
    async def lift_directive(
        http: Request,
        directive_id: str = Depends(checked_directive_id),
        key: str | None = Depends(checked_idempotency_key),
    ) -> JSONResponse:
        """Lift an issued directive at its latest revision (a repeat under the same Idempotency-Key is replayed)."""
        request = validated_body(LiftRequest, await json_body(http, required=False) or {})
        decision = await desk.lift(directive_id, request.reason, key)
        log.info(
            "directive lifted",
            directive_id=directive_id,
            revision=decision.event.revision,
            event_id=decision.event.event_id,
            outcome=decision.outcome,
        )
        return _answer(decision)

    @api.get("/directives", response_model=list[DirectiveSummary])
    async def list_directives() -> list[DirectiveSummary]:
        """Every directive intake knows, by id."""
        return [DirectiveSummary(**_summary(e)) for e in desk.book.entries()]

    @api.get("/directives/{directive_id}", response_model=DirectiveDetail, responses={404: {"model": Failure}})
    async def show_directive(directive_id: str = Depends(checked_directive_id)) -> DirectiveDetail:
        """One directive with its latest scope."""
        entry = desk.book.get(directive_id)
        return DirectiveDetail(
            **_summary(entry),
            authority=entry.authority,
            lift_reason=entry.lift_reason,
            scope=entry.issued.scope if entry.issued else None,
            issued_event_id=entry.issued.event_id if entry.issued else None,
        )

    @api.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @api.get("/readyz", responses={503: {"description": "Not caught up with the directive topic yet."}})
    async def readyz() -> JSONResponse:
        """Ready once the directive view has read the topic up to where it ended at startup."""
        return JSONResponse({"ready": desk.ready}, status_code=200 if desk.ready else 503)

    return api


def _answer(decision: Decision) -> JSONResponse:
    event = decision.event
    body = Accepted(
        directive_id=event.directive_id,
        revision=event.revision,
        event_id=event.event_id,
        unchanged=decision.outcome == "unchanged",
    )
    status = 200 if decision.outcome == "unchanged" else 202
    headers = {"Idempotent-Replayed": "true"} if decision.outcome == "replayed" else None
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


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

    @api.exception_handler(PublishFailed)
    async def not_published(_: Request, exc: PublishFailed) -> JSONResponse:
        log.error("publish failed", error=str(exc))
        return failure(503, str(exc))
