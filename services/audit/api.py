"""The audit's HTTP API: health and metrics (open), and `GET /v1/explain` for the auditor role (JWT or API key)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, FastAPI, Query
from fastapi.responses import Response

from services.audit.answers import answer_json, explain_from_ledger
from services.audit.explain import BeforeFirstEvent, moment
from services.audit.forgery import Signatures
from services.audit.ledger import Ledger, LedgerMissing
from services.audit.report import NothingFound
from shared.runtime.auth import Guard, Principal, Role
from shared.runtime.health import ConsumerWatch
from shared.runtime.http import Failure, failure, health_app, install_problem_handlers
from shared.runtime.problems import Problem

REFUSALS: dict[int | str, dict] = {401: {"model": Failure}, 403: {"model": Failure}}


def create_api(
    service: str,
    open_ledger: Callable[[], Ledger],
    signatures: Signatures,
    guard: Guard,
    ready: Callable[[], bool],
    watch: ConsumerWatch | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> FastAPI:
    """Health, metrics and explain; `open_ledger` gives a reader of the ledger for one request."""
    api = health_app(service, ready, watch)
    install_problem_handlers(api)
    guard.install(api)
    auditor = Depends(guard.requires(Role.AUDITOR))

    @api.get(
        "/v1/explain",
        responses={**REFUSALS, 404: {"model": Failure}, 422: {"model": Failure}, 503: {"model": Failure}},
    )
    async def explain_route(
        user: Annotated[int, Query(ge=0, description="User id.")],
        model: Annotated[str, Query(min_length=1, max_length=200, description="Model name.")],
        at: Annotated[str | None, Query(description="The moment asked about (ISO 8601; default: now).")] = None,
        _: Principal = auditor,
    ) -> Response:
        """Was USER allowed MODEL at that moment on each cluster, and on what evidence: the same JSON as
        `countermand audit explain --json`, answered from the audit's ledger."""
        try:
            when = clock() if at is None else moment(at)
        except ValueError as exc:
            return failure(422, "invalid time", [Problem(field="at", message=str(exc))])
        try:
            answer = await asyncio.to_thread(_explain, open_ledger, signatures, user, model, when)
        except BeforeFirstEvent as exc:
            return failure(422, "no answer at that time", [Problem(field="at", message=str(exc))])
        except NothingFound as exc:
            field = "model" if str(exc).startswith("model") else "user"
            return failure(404, "not found", [Problem(field=field, message=str(exc))])
        except LedgerMissing as exc:
            return failure(503, "the ledger is not there yet", [Problem(field="ledger", message=str(exc))])
        return Response(answer_json(answer), media_type="application/json")

    return api


def _explain(open_ledger: Callable[[], Ledger], signatures: Signatures, user: int, model: str, at: datetime) -> dict:
    ledger = open_ledger()
    try:
        return explain_from_ledger(ledger, user, model, at, signatures)
    finally:
        ledger.close()
