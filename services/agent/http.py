"""The access-check HTTP API (FastAPI): single and batch checks, readiness, health and held state."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from services.agent.access import AccessChecker, Decision, NotReady
from services.agent.settings import MODEL_PATTERN

MAX_USER = 2**32 - 1
MAX_BATCH = 10_000
NOT_READY = {"detail": "agent not ready: catching up with its commands; no access decision is given"}


class Check(BaseModel):
    """One (user, model) pair to check."""

    model_config = ConfigDict(extra="forbid")

    user: int = Field(..., ge=0, le=MAX_USER, description="User id.", examples=[1042])
    model: str = Field(..., pattern=MODEL_PATTERN, description="Model name.", examples=["fable-5"])


class Batch(BaseModel):
    """Several checks answered in one call, in order."""

    model_config = ConfigDict(extra="forbid")

    checks: list[Check] = Field(..., max_length=MAX_BATCH, description="Pairs to check.")


def _answer(decision: Decision) -> dict[str, Any]:
    return {"user": decision.user, "model": decision.model, "decision": decision.decision,
            "directives": list(decision.directives)}


def access_api(checker: AccessChecker, state: Callable[[], dict[str, Any]],
               clock: Callable[[], datetime]) -> FastAPI:
    """The HTTP API over an AccessChecker; `state` describes what is held, `clock` gives the time."""
    api = FastAPI(title="Countermand agent", description="Allow/deny checks for one serving cluster.")

    @api.get("/v1/access")
    async def access(user: int = Query(..., ge=0, le=MAX_USER, description="User id."),
               model: str = Query(..., pattern=MODEL_PATTERN, description="Model name.")) -> Any:
        try:
            return _answer(checker.check(user, model, clock()))
        except NotReady:
            return JSONResponse(NOT_READY, status_code=503)

    @api.post("/v1/access:batch")
    async def access_batch(batch: Batch) -> Any:
        now = clock()
        try:
            return {"results": [_answer(checker.check(c.user, c.model, now)) for c in batch.checks]}
        except NotReady:
            return JSONResponse(NOT_READY, status_code=503)

    @api.get("/readyz")
    async def readyz() -> Any:
        return {"ready": True} if checker.ready else JSONResponse({"ready": False}, status_code=503)

    @api.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/v1/state")
    async def held_state() -> dict[str, Any]:
        return state()

    return api
