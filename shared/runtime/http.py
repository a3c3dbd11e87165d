"""HTTP error bodies shared by the services' FastAPI apps: 400 for malformed JSON, 422 naming each bad field."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, TypeAdapter, ValidationError

from shared.contracts.directives import DirectiveId
from shared.runtime.problems import Problem, problems

_LOCATIONS = ("body", "path", "query")
_directive_id = TypeAdapter(DirectiveId)


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


def checked_directive_id(directive_id: str) -> str:
    """A path parameter validated as a directive id (a FastAPI dependency); a bad one is a 422 naming it."""
    try:
        return _directive_id.validate_python(directive_id)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("path", "directive_id", *e["loc"])} for e in exc.errors()]) from exc


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
