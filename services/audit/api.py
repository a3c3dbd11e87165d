"""The audit's HTTP API: health and metrics (open); `GET /v1/explain` and `GET /v1/reports/{directive_id}` (the
directive's report as JSON or HTML, as `countermand audit report` writes them) for the auditor role."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Query
from fastapi.responses import Response

from services.audit.answers import answer_json, directive_evidence, explain_from_ledger
from services.audit.explain import BeforeFirstEvent, moment
from services.audit.forgery import Signatures
from services.audit.html import render_html
from services.audit.ledger import Ledger, LedgerMissing
from services.audit.proofs import check_ledger
from services.audit.report import NothingFound, build_report
from services.audit.report_model import CheckpointVerification, DirectiveReport
from shared.runtime.auth import Guard, Principal, Role
from shared.runtime.health import ConsumerWatch
from shared.runtime.http import Failure, checked_directive_id, failure, health_app, install_problem_handlers
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

    @api.get(
        "/v1/reports/{directive_id}",
        responses={**REFUSALS, 404: {"model": Failure}, 422: {"model": Failure}, 503: {"model": Failure}},
    )
    async def report_route(
        directive_id: str = Depends(checked_directive_id),
        fmt: Annotated[
            Literal["json", "html"], Query(alias="format", description="json (docs/schemas) or html.")
        ] = "json",
        _: Principal = auditor,
    ) -> Response:
        """The directive's report from the ledger, as a file: the same JSON and HTML as `countermand audit report
        --no-reproduce`, with the ledger's own chain check as its checkpoint verification."""
        try:
            found = await asyncio.to_thread(_report, open_ledger, signatures, directive_id, clock())
        except NothingFound as exc:
            return failure(404, "not found", [Problem(field="directive_id", message=str(exc))])
        except LedgerMissing as exc:
            return failure(503, "the ledger is not there yet", [Problem(field="ledger", message=str(exc))])
        name = f"countermand-report-{directive_id}.{fmt}"
        disposition = {"Content-Disposition": f'attachment; filename="{name}"'}
        if fmt == "html":
            return Response(render_html(found), media_type="text/html; charset=utf-8", headers=disposition)
        return Response(found.model_dump_json(indent=2), media_type="application/json", headers=disposition)

    return api


def _report(
    open_ledger: Callable[[], Ledger], signatures: Signatures, directive_id: str, now: datetime
) -> DirectiveReport:
    ledger = open_ledger()
    try:
        evidence = directive_evidence(ledger, directive_id, signatures)
        check = check_ledger(ledger.entries(), [], None)
    finally:
        ledger.close()
    chain = check.chain
    verification = CheckpointVerification(
        chain_intact=chain.intact,
        entries=check.size,
        root=check.root.hex(),
        problems=[] if chain.intact else [f"chain broken at seq {chain.broken_seq}: {chain.reason}"],
    )
    return build_report(evidence, directive_id, now, checkpoint=verification)


def _explain(open_ledger: Callable[[], Ledger], signatures: Signatures, user: int, model: str, at: datetime) -> dict:
    ledger = open_ledger()
    try:
        return explain_from_ledger(ledger, user, model, at, signatures)
    finally:
        ledger.close()
