"""What the services' HTTP apps share: error bodies (400 for malformed JSON, 422 naming each bad field), health
and readiness routes, and the uvicorn server they run on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import uvicorn
from fastapi import FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, TypeAdapter, ValidationError

from shared.contracts.directives import DirectiveId, IdempotencyKey
from shared.runtime.health import ConsumerWatch, readiness
from shared.runtime.metrics import Refresh, install_metrics
from shared.runtime.problems import Problem, problems
from shared.runtime.request_body import BadBody

_LOCATIONS = ("body", "path", "query", "header")
_directive_id = TypeAdapter(DirectiveId)
_idempotency_key = TypeAdapter(IdempotencyKey)
M = TypeVar("M", bound=BaseModel)


class Failure(BaseModel):
    """Why a request was refused; `problems` names each bad field."""

    error: str
    problems: list[Problem] = []


def failure(status: int, error: str, found: list[Problem] | None = None) -> JSONResponse:
    """A refusal with its status code, reason and the problems found."""
    return JSONResponse(Failure(error=error, problems=found or []).model_dump(), status_code=status)


def install_problem_handlers(api: FastAPI) -> None:
    """Answer invalid requests with a Failure: 400 for malformed JSON, else 422 naming every bad field."""
    api.add_exception_handler(RequestValidationError, _invalid)
    api.add_exception_handler(BadBody, _bad_body)


def checked_directive_id(directive_id: str) -> str:
    """A path parameter validated as a directive id (a FastAPI dependency); a bad one is a 422 naming it."""
    try:
        return _directive_id.validate_python(directive_id)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("path", "directive_id", *e["loc"])} for e in exc.errors()]) from exc


def checked_idempotency_key(
    key: str | None = Header(
        None,
        alias="Idempotency-Key",
        description="Makes a retry safe: the same key and request are answered as the first time.",
    ),
) -> str | None:
    """The Idempotency-Key header validated (a FastAPI dependency); a bad one is a 422 naming it."""
    if key is None:
        return None
    try:
        return _idempotency_key.validate_python(key)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("header", "Idempotency-Key", *e["loc"])} for e in exc.errors()]
        ) from exc


def validated_body(model: type[M], data: Any) -> M:
    """A body's data validated as the model; a 422 naming every bad field otherwise."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from exc


_REF_TEMPLATE = "#/components/schemas/{model}"


def request_body_schema(model: type[BaseModel], required: bool = True) -> dict[str, Any]:
    """OpenAPI of a JSON body the route reads itself (to limit and parse it before validation); the models it
    refers to are added to the document by `document_bodies`."""
    schema = model.model_json_schema(ref_template=_REF_TEMPLATE)
    schema.pop("$defs", None)
    return {"requestBody": {"required": required, "content": {"application/json": {"schema": schema}}}}


def document_bodies(api: FastAPI, *models: type[BaseModel]) -> None:
    """Add the models that self-read bodies refer to to the app's OpenAPI components."""
    build = api.openapi

    def openapi() -> dict[str, Any]:
        document = build()
        components = document.setdefault("components", {}).setdefault("schemas", {})
        for model in models:
            for name, schema in model.model_json_schema(ref_template=_REF_TEMPLATE).get("$defs", {}).items():
                components.setdefault(name, schema)
        return document

    api.openapi = openapi  # type: ignore[method-assign]


async def _bad_body(_: Request, exc: Exception) -> JSONResponse:
    return failure(
        exc.status if isinstance(exc, BadBody) else 400, str(exc), [Problem(field="(body)", message=str(exc))]
    )


async def _invalid(_: Request, exc: Exception) -> JSONResponse:
    errors: list[dict[str, Any]] = list(exc.errors()) if isinstance(exc, RequestValidationError) else []
    malformed = [e for e in errors if e.get("type") == "json_invalid"]
    if malformed:
        return failure(400, "malformed JSON body", [_json_problem(e) for e in malformed])
    found = []
    for location in _LOCATIONS:
        found += problems([e for e in errors if e["loc"][:1] == (location,)], drop_prefix=(location,))
    return failure(422, "invalid request", found)


def _json_problem(error: dict[str, Any]) -> Problem:
    position = error["loc"][1] if len(error["loc"]) > 1 else "?"
    reason = error.get("ctx", {}).get("error", error.get("msg", "invalid JSON"))
    return Problem(field="(body)", message=f"malformed JSON at character {position}: {reason}")


def http_server(app: Any, host: str, port: int) -> uvicorn.Server:
    """A uvicorn server for a service's app on host:port (run it with `await serve()`; the run loop does)."""
    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, lifespan="off"))


def install_health(api: FastAPI, ready: Callable[[], bool], watch: ConsumerWatch | None = None) -> None:
    """GET /healthz (the process answers) and GET /readyz (ready, and no consumer stuck: 503 naming it)."""

    @api.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @api.get("/readyz", responses={503: {"description": "Not ready yet, or a consumer is stuck (named)."}})
    async def readyz() -> JSONResponse:
        """Ready: started and caught up, with no consumer stuck on a record."""
        status, body = readiness(ready(), watch)
        return JSONResponse(body, status_code=status)


def health_app(
    service: str, ready: Callable[[], bool], watch: ConsumerWatch | None = None, refresh: Refresh | None = None
) -> FastAPI:
    """The HTTP app of a service that has no API of its own: health, readiness and metrics only."""
    api = FastAPI(title=f"Countermand {service}", version="1", description=f"Health of the {service} service.")
    install_health(api, ready, watch)
    install_metrics(api, refresh)
    return api
