"""HTTP API of the impact service: dry runs of directives and lifts over the live view, health and readiness."""

from __future__ import annotations

from typing import Any, Protocol

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from services.impact.directives import Directives
from services.impact.population import Population
from services.impact.preview import NotActive, Preview, preview_directive, preview_lift
from services.impact.request import PreviewRequest, Problem, problems
from shared.contracts.directives import DirectiveId

_directive_id = TypeAdapter(DirectiveId)
_LOCATIONS = ("body", "path", "query")


class ImpactState(Protocol):
    """What the API reads of the running service."""

    loaded: bool
    directives: Directives

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


class Failure(BaseModel):
    """Why a request was refused; `problems` names each bad field."""

    error: str
    problems: list[Problem] = []


def create_api(state: ImpactState) -> FastAPI:
    """The FastAPI app over the running service's view and directives."""
    api = FastAPI(title="Countermand impact", version="1",
                  description="Dry runs of directives and lifts against the current user view.")
    _add_error_handlers(api)

    @api.post("/directives/preview", response_model=PreviewAnswer,
              responses={422: {"model": Failure}, 503: {"model": Failure}})
    async def preview(request: PreviewRequest) -> PreviewAnswer | JSONResponse:
        """What issuing (or amending) this directive would affect now. Publishes nothing."""
        if not state.loaded:
            return _failure(503, "the user view has not caught up with the registry yet")
        found = preview_directive(state.population, state.directives, request.directive_id, request.scope)
        return _answer(request.directive_id, found)

    @api.post("/directives/{directive_id}/lift/preview", response_model=PreviewAnswer,
              responses={404: {"model": Failure}, 422: {"model": Failure}, 503: {"model": Failure}})
    async def lift_preview(directive_id: str = Depends(_checked_id)) -> PreviewAnswer | JSONResponse:
        """What lifting this active directive would restore, net of the other active ones. Publishes nothing."""
        if not state.loaded:
            return _failure(503, "the user view has not caught up with the registry yet")
        try:
            return _answer(directive_id, preview_lift(state.population, state.directives, directive_id))
        except NotActive as exc:
            return _failure(404, str(exc))

    @api.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @api.get("/readyz", responses={503: {"description": "The user view has not caught up yet."}})
    async def readyz() -> JSONResponse:
        """Ready once the user view has caught up with the registry after start."""
        return JSONResponse({"ready": state.loaded}, status_code=200 if state.loaded else 503)

    return api


def _answer(directive_id: str, found: Preview) -> PreviewAnswer:
    affected = found.affected
    return PreviewAnswer(
        directive_id=directive_id, affected_by_model={m: len(u) for m, u in affected.by_model.items()},
        affected_users=affected.users, by_country=affected.by_country, by_account_type=affected.by_account_type,
        unknown_only=affected.unknown_only, sample=found.sample, amends_revision=found.amends_revision,
        added_by_model=found.added_by_model, removed_by_model=found.removed_by_model)


def _checked_id(directive_id: str) -> str:
    try:
        return _directive_id.validate_python(directive_id)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("path", "directive_id", *e["loc"])} for e in exc.errors()]) from exc


def _failure(status: int, error: str, found: list[Problem] | None = None) -> JSONResponse:
    return JSONResponse(Failure(error=error, problems=found or []).model_dump(), status_code=status)


def _add_error_handlers(api: FastAPI) -> None:
    @api.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors: list[dict[str, Any]] = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            return _failure(400, "malformed JSON body", [Problem(field="(body)", message="not valid JSON")])
        found = []
        for location in _LOCATIONS:
            found += problems([e for e in errors if e["loc"][:1] == (location,)], drop_prefix=(location,))
        return _failure(422, "invalid request", found)
