"""The access-check HTTP API (FastAPI): single and batch checks, readiness, health and held state.

`GET /v1/access` is the gateways' hot path: a well-formed request is answered by a thin ASGI front
without FastAPI's routing, validation and serialisation (same JSON, same status codes); anything else,
including every malformed request, goes to the FastAPI app, which documents the API and names the bad
parameter in its 422 answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
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
               clock: Callable[[], datetime]) -> AccessFront:
    """The HTTP API over an AccessChecker; `state` describes what is held, `clock` gives the time."""
    return AccessFront(_documented_api(checker, state, clock), checker, clock)


def _documented_api(checker: AccessChecker, state: Callable[[], dict[str, Any]],
                    clock: Callable[[], datetime]) -> FastAPI:
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


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
_MODEL = re.compile(MODEL_PATTERN)
_USER = re.compile(r"^[0-9]{1,10}$")
_JSON = [(b"content-type", b"application/json")]


class AccessFront:
    """ASGI app: answers well-formed `GET /v1/access` directly, hands everything else to the FastAPI app."""

    def __init__(self, api: FastAPI, checker: AccessChecker, clock: Callable[[], datetime]) -> None:
        self.api = api
        self._checker = checker
        self._clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/v1/access" and scope["method"] == "GET":
            pair = _pair(scope["query_string"])
            if pair is not None:
                status, body = self._answer(*pair)
                await send({"type": "http.response.start", "status": status,
                            "headers": [*_JSON, (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.api(scope, receive, send)

    def _answer(self, user: int, model: str) -> tuple[int, bytes]:
        try:
            content: Any = _answer(self._checker.check(user, model, self._clock()))
            status = 200
        except NotReady:
            content, status = NOT_READY, 503
        return status, json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()


def _pair(query: bytes) -> tuple[int, str] | None:
    """(user, model) from exactly `user=<id>&model=<name>` in either order, or None to let FastAPI judge."""
    try:
        fields = dict(part.split("=") for part in query.decode("ascii").split("&"))
    except ValueError:
        return None
    user, model = fields.get("user", ""), fields.get("model", "")
    if len(fields) != 2 or not _USER.fullmatch(user) or int(user) > MAX_USER or not _MODEL.fullmatch(model):
        return None
    return int(user), model
