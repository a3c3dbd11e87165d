"""HTTP API of the impact service: dry runs of directives and lifts over the live view, health and readiness.

Dry runs reveal user ids and counts per country: proposers, approvers and viewers only (Guard); health is open.
"""

from __future__ import annotations

from typing import Protocol

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.impact.directives import Directives
from services.impact.preview import NotActive, Preview, preview_directive, preview_lift
from services.impact.user_columns import Population
from shared.contracts.directives import DirectiveRequest
from shared.runtime.auth import Guard, Principal, Role
from shared.runtime.health import ConsumerWatch, readiness
from shared.runtime.http import (
    Failure,
    checked_directive_id,
    document_bodies,
    failure,
    install_problem_handlers,
    request_body_schema,
    validated_body,
)
from shared.runtime.metrics import AFFECTED_USERS, install_metrics
from shared.runtime.request_body import BodyLimit, json_body


class ImpactState(Protocol):
    """What the API reads of the running service."""

    loaded: bool
    directives: Directives
    watch: ConsumerWatch

    @property
    def population(self) -> Population: ...


class PreviewAnswer(BaseModel):
    """What a directive or a lift would do now; nothing is published."""

    directive_id: str
    affected_by_model: dict[str, int] = Field(..., description="Users per model (a lift: restored, net of others).")
    affected_users: int
    by_country: dict[str, int]
    by_account_type: dict[str, int]
    unknown_only: int = Field(..., description="Users affected only because an attribute is unknown.")
    sample: list[int] = Field(..., description="Up to 20 affected (or restored) user ids, ascending.")
    amends_revision: int | None = Field(None, description="The active revision this would amend, if any.")
    added_by_model: dict[str, int] | None = None
    removed_by_model: dict[str, int] | None = None
    losing_by_model: dict[str, int] | None = Field(
        None, description="Per model, the covered users entitled to it now: who actually lose it (a lift: regain it)."
    )
    losing_users: int | None = Field(None, description="Distinct users losing (a lift: regaining) at least one model.")
    losing_by_country: dict[str, int] | None = Field(None, description="Users losing access by residence (?? unknown).")
    losing_by_account_type: dict[str, int] | None = Field(None, description="Users losing access by account type.")
    losing_added_by_model: dict[str, int] | None = Field(
        None, description="An amendment: per model, users it newly covers who are entitled to the model."
    )
    losing_removed_by_model: dict[str, int] | None = Field(
        None, description="An amendment: per model, users it no longer covers who are entitled to the model."
    )


DRY_RUNNERS = (Role.PROPOSER, Role.APPROVER, Role.VIEWER)
REFUSALS: dict[int | str, dict] = {401: {"model": Failure}, 403: {"model": Failure}}


def create_api(state: ImpactState, guard: Guard) -> FastAPI:
    """The FastAPI app over the running service's view and directives, behind a guard."""
    api = FastAPI(
        title="Countermand impact",
        version="1",
        description="Dry runs of directives and lifts against the current user view.",
    )
    api.add_middleware(BodyLimit)
    document_bodies(api, DirectiveRequest)
    install_problem_handlers(api)
    guard.install(api)
    dry_runner = Depends(guard.requires(*DRY_RUNNERS))

    @api.post(
        "/directives/preview",
        response_model=PreviewAnswer,
        openapi_extra=request_body_schema(DirectiveRequest),
        responses={
            **REFUSALS,
            400: {"model": Failure},
            413: {"model": Failure},
            415: {"model": Failure},
            422: {"model": Failure},
            503: {"model": Failure},
        },
    )
    async def preview(http: Request, _: Principal = dry_runner) -> PreviewAnswer | JSONResponse:
        """What issuing (or amending) this directive would affect now. Publishes nothing.

        The body is read within the same limits as intake's (size, encoding, depth), then validated."""
        request = validated_body(DirectiveRequest, await json_body(http))
        if not state.loaded:
            return failure(503, "the user view has not caught up with the registry yet")
        found = preview_directive(state.population, state.directives, request.directive_id, request.scope)
        return _answer(request.directive_id, found)

    @api.post(
        "/directives/{directive_id}/lift/preview",
        response_model=PreviewAnswer,
        responses={**REFUSALS, 404: {"model": Failure}, 422: {"model": Failure}, 503: {"model": Failure}},
    )
    async def lift_preview(
        _: Principal = dry_runner, directive_id: str = Depends(checked_directive_id)
    ) -> PreviewAnswer | JSONResponse:
        """What lifting this active directive would restore, net of the other active ones. Publishes nothing."""
        if not state.loaded:
            return failure(503, "the user view has not caught up with the registry yet")
        try:
            return _answer(directive_id, preview_lift(state.population, state.directives, directive_id))
        except NotActive as exc:
            return failure(404, str(exc))

    @api.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @api.get(
        "/readyz",
        responses={
            503: {"description": "The user view has not caught up yet, or a consumer is stuck (named in the body)."}
        },
    )
    async def readyz() -> JSONResponse:
        """Ready once the user view has caught up with the registry after start, with no consumer stuck."""
        status, body = readiness(state.loaded, state.watch)
        return JSONResponse(body, status_code=status)

    install_metrics(api, lambda: _export_affected(state.directives))
    return api


def _export_affected(directives: Directives) -> None:
    covered = directives.covered_by_model()
    AFFECTED_USERS.clear()  # a model no longer restricted disappears rather than keep its last count
    for model, users in covered.items():
        AFFECTED_USERS.labels(model).set(users)


def _answer(directive_id: str, found: Preview) -> PreviewAnswer:
    affected, losing = found.affected, found.losing
    return PreviewAnswer(
        directive_id=directive_id,
        affected_by_model={m: len(u) for m, u in affected.by_model.items()},
        affected_users=affected.users,
        by_country=affected.by_country,
        by_account_type=affected.by_account_type,
        unknown_only=affected.unknown_only,
        sample=found.sample,
        amends_revision=found.amends_revision,
        added_by_model=found.added_by_model,
        removed_by_model=found.removed_by_model,
        losing_by_model=None if losing is None else {m: len(u) for m, u in losing.by_model.items()},
        losing_users=None if losing is None else losing.users,
        losing_by_country=None if losing is None else losing.by_country,
        losing_by_account_type=None if losing is None else losing.by_account_type,
        losing_added_by_model=found.losing_added_by_model,
        losing_removed_by_model=found.losing_removed_by_model,
    )
