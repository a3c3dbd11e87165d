"""The access-check HTTP API (FastAPI): single and batch checks, readiness, health and held state.

`GET /v1/access` is the gateways' hot path: a well-formed request with a valid gateway API key is answered
without FastAPI's routing, validation and serialisation (same JSON, same status codes), by the HTTP protocol
itself as soon as the request is parsed (`AccessProtocol`), or by a thin ASGI front when it comes through ASGI;
the key is checked against a precomputed dict of hashes (FastKeys), no token work. Anything else, including
every malformed request and every missing or bad credential, goes to the FastAPI app, which documents the API,
names the bad parameter in its 422 answer and refuses a caller with 401/403 (logged with the subject).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime
from typing import Any

import httptools
import uvicorn
from fastapi import Depends, FastAPI, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from services.agent.access import AccessChecker, Decision, NotReady
from services.agent.settings import MODEL_PATTERN
from shared.runtime.auth import API_KEY_HEADER, FastKeys, Guard, Principal, Role
from shared.runtime.health import ConsumerWatch, readiness
from shared.runtime.metrics import ACCESS_CHECKS, AGENT_CONTROL_PLANE_AGE, install_metrics
from shared.runtime.uvicorn_fence import STATUS_LINE, HttpToolsProtocol

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
    return {
        "user": decision.user,
        "model": decision.model,
        "decision": decision.decision,
        "directives": list(decision.directives),
    }


class CheckCounts:
    """Access checks answered since the last scrape, as plain ints: the hot path pays one increment, and
    /metrics adds them to the access-checks counter in one batch (no metric call per request)."""

    __slots__ = ("allow", "deny", "not_ready")

    def __init__(self) -> None:
        self.allow = self.deny = self.not_ready = 0

    def count(self, decision: Decision) -> None:
        if decision.decision == "allow":
            self.allow += 1
        else:
            self.deny += 1

    def export(self, cluster: str) -> None:
        """Move the counts into the Prometheus counter (the event loop's thread: no check runs meanwhile)."""
        counts = {"allow": self.allow, "deny": self.deny, "not_ready": self.not_ready}
        self.allow = self.deny = self.not_ready = 0
        for decision, checks in counts.items():
            ACCESS_CHECKS.labels(cluster, decision).inc(checks)


def access_api(
    checker: AccessChecker,
    state: Callable[[], dict[str, Any]],
    clock: Callable[[], datetime],
    watch: ConsumerWatch | None,
    guard: Guard,
    cluster: str = "",
) -> AccessFront:
    """The HTTP API over an AccessChecker; `state` describes what is held, `clock` gives the time, `watch`
    says whether the commands consumer is stuck (readiness), `guard` who may call (gateways, by API key),
    `cluster` labels its metrics."""
    counts = CheckCounts()

    def refresh() -> None:
        counts.export(cluster)
        if checker.last_contact is not None:
            AGENT_CONTROL_PLANE_AGE.labels(cluster).set((clock() - checker.last_contact).total_seconds())

    api = _documented_api(checker, state, clock, watch, guard, counts)
    install_metrics(api, refresh)
    return AccessFront(api, checker, clock, FastKeys(guard, Role.GATEWAY), counts)


def _documented_api(
    checker: AccessChecker,
    state: Callable[[], dict[str, Any]],
    clock: Callable[[], datetime],
    watch: ConsumerWatch | None,
    guard: Guard,
    counts: CheckCounts,
) -> FastAPI:
    api = FastAPI(title="Countermand agent", description="Allow/deny checks for one serving cluster.")
    guard.install(api)
    gateway = Depends(guard.requires(Role.GATEWAY))

    @api.get("/v1/access")
    async def access(
        _: Principal = gateway,
        user: int = Query(..., ge=0, le=MAX_USER, description="User id."),
        model: str = Query(..., pattern=MODEL_PATTERN, description="Model name."),
    ) -> Any:
        try:
            decision = checker.check(user, model, clock())
        except NotReady:
            counts.not_ready += 1
            return JSONResponse(NOT_READY, status_code=503)
        counts.count(decision)
        return _answer(decision)

    @api.post("/v1/access:batch")
    async def access_batch(batch: Batch, _: Principal = gateway) -> Any:
        now = clock()
        try:
            decisions = [checker.check(c.user, c.model, now) for c in batch.checks]
        except NotReady:
            counts.not_ready += len(batch.checks)
            return JSONResponse(NOT_READY, status_code=503)
        for decision in decisions:
            counts.count(decision)
        return {"results": [_answer(decision) for decision in decisions]}

    @api.get("/readyz")
    async def readyz() -> Any:
        status, body = readiness(checker.ready, watch)
        return JSONResponse(body, status_code=status)

    @api.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/v1/state")
    async def held_state(
        _: Principal = Depends(guard.requires(Role.GATEWAY, Role.VIEWER, Role.AUDITOR)),
    ) -> dict[str, Any]:
        return state()

    return api


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
_MODEL = re.compile(MODEL_PATTERN)
_USER = re.compile(r"^[0-9]{1,10}$")
_JSON = [(b"content-type", b"application/json")]
_TYPES = (b"application/json", b"text/plain; charset=utf-8")  # an answer, an unexpected failure


class AccessFront:
    """ASGI app: answers well-formed `GET /v1/access` directly, hands everything else to the FastAPI app."""

    def __init__(
        self,
        api: FastAPI,
        checker: AccessChecker,
        clock: Callable[[], datetime],
        keys: FastKeys,
        counts: CheckCounts | None = None,
    ) -> None:
        self.api = api
        self.keys = keys
        self.counts = counts or CheckCounts()
        self._checker = checker
        self._clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] == "/v1/access"
            and scope["method"] == "GET"
            and self.keys.allows(_api_key(scope["headers"]))
        ):
            pair = _pair(scope["query_string"])
            if pair is not None:
                status, body = self.answer(*pair)
                await send(
                    {
                        "type": "http.response.start",
                        "status": status,
                        "headers": [*_JSON, (b"content-length", str(len(body)).encode())],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.api(scope, receive, send)

    def answer(self, user: int, model: str) -> tuple[int, bytes]:
        """(status, JSON body) of the check of `user` for `model` now."""
        try:
            decision = self._checker.check(user, model, self._clock())
        except NotReady:
            self.counts.not_ready += 1
            content: Any = NOT_READY
            status = 503
        else:
            self.counts.count(decision)
            content, status = _answer(decision), 200
        return status, json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()


_API_KEY = API_KEY_HEADER.encode()


def _api_key(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The X-API-Key header's value (names are lower-case, as both uvicorn and ASGI give them)."""
    for name, value in headers:
        if name == _API_KEY:
            return value
    return None


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


class AccessProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol, answering a well-formed `GET /v1/access` in the parser's callbacks.

    It relies on uvicorn internals: those it uses are listed and checked in shared.runtime.uvicorn_fence.

    The answer is written as soon as the request is complete: no task, no ASGI round trip, no per-request
    scope. Everything else takes uvicorn's own path to the ASGI app unchanged (keep-alive, pipelining,
    flow control, 400 on a malformed request, 422 from FastAPI), and so does a check pipelined behind a
    request still being answered, so that answers leave in request order.
    """

    def __init__(self, config: uvicorn.Config, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        if not isinstance(config.app, AccessFront):
            raise TypeError("AccessProtocol serves an AccessFront")
        self.front = config.app
        self._check: tuple[int, str] | None = None

    def on_message_begin(self) -> None:
        self._check = None
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._check = self._hot_check()
        if self._check is None:
            super().on_headers_complete()

    def _hot_check(self) -> tuple[int, str] | None:
        if (
            self.parser.get_method() != b"GET"
            or self.parser.should_upgrade()
            or self.pipeline
            or (self.cycle is not None and not self.cycle.response_complete)
            or not self.front.keys.allows(_api_key(self.headers))
        ):
            return None
        try:
            url = httptools.parse_url(self.url)
        except httptools.HttpParserInvalidURLError:
            return None
        return _pair(url.query or b"") if url.path == b"/v1/access" else None

    def on_body(self, body: bytes) -> None:
        if self._check is None:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._check is None:
            super().on_message_complete()
            return
        if self.transport.is_closing():
            return  # pipelined after a request that closed the connection: not answered, as uvicorn does
        keep_alive = self.parser.get_http_version() != "1.0" and self.parser.should_keep_alive()
        try:
            status, body = self.front.answer(*self._check)
        except Exception as exc:
            self.logger.error("Exception in the access check\n", exc_info=exc)
            status, body, keep_alive = 500, b"Internal Server Error", False
        self._respond(status, body, keep_alive)

    def _respond(self, status: int, body: bytes, keep_alive: bool) -> None:
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: ",
            _TYPES[status == 500],
            b"\r\ncontent-length: ",
            str(len(body)).encode(),
            b"\r\n\r\n" if keep_alive else b"\r\nconnection: close\r\n\r\n",
            body,
        ]
        self.transport.write(b"".join(head))
        self.server_state.total_requests += 1
        if not keep_alive:
            self.transport.close()
            return
        if self.flow.write_paused:
            self.flow.pause_reading()  # a client that does not read its answers is not read either
        self._unset_keepalive_if_required()
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.cycle is None or self.cycle.response_complete:
            self.flow.resume_reading()


def server_config(front: AccessFront, host: str, port: int) -> uvicorn.Config:
    """How the agent serves its API: uvicorn with `AccessProtocol`, no lifespan, no access log."""
    return uvicorn.Config(
        front, host=host, port=port, http=AccessProtocol, log_level="warning", lifespan="off", access_log=False
    )
