"""The console's web app: login, the read-only pages over the board, the live event stream, health and metrics."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from services.console.board import Board
from services.console.feed import Feed, Hub
from services.console.session import (
    COOKIE,
    BadForm,
    Forbidden,
    LoginNeeded,
    Session,
    form_of,
    local_path,
    login_url,
    same_origin,
    session_of,
)
from services.console.views import checkpoint_status, cluster_view, directive_detail, directive_summary
from shared.runtime.auth import AuthError, Guard
from shared.runtime.http import install_health
from shared.runtime.metrics import install_metrics

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.trim_blocks = templates.env.lstrip_blocks = True  # no template indentation sent with every row
KEEPALIVE_S = 15.0
CHUNK = 16 * 1024  # characters of a page per chunk sent
# The stylesheet is inlined in every page (no request before the first paint) and allowed by its hash alone.
STYLE = (HERE / "static" / "console.css").read_text()
STYLE_HASH = "sha256-" + base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
templates.env.globals["inline_style"] = Markup(STYLE)
CSP = f"default-src 'self'; img-src 'self' data:; style-src 'self' '{STYLE_HASH}'; frame-ancestors 'none'"


def page(request: Request, name: str, session: Session | None, status: int = 200, **context: Any) -> Response:
    """A rendered page; every page knows who is signed in (for the header) and whether the broker answers.

    Sent as it renders, in chunks: the browser paints the head and the top of a long page (the live board) while
    the rest is still on its way. The context is computed before the first byte, so nothing changes under it."""
    template = templates.get_template(name)
    parts = template.generate({"request": request, "session": session, **context})
    return StreamingResponse(_chunks(parts), status_code=status, media_type="text/html; charset=utf-8")


async def _chunks(parts: Iterator[str]) -> AsyncIterator[bytes]:
    buffer: list[str] = []
    size = 0
    for part in parts:
        buffer.append(part)
        size += len(part)
        if size >= CHUNK:
            yield "".join(buffer).encode()
            buffer, size = [], 0
    if buffer:
        yield "".join(buffer).encode()


def create_app(board: Board, feed: Feed, hub: Hub, guard: Guard, *, secure_cookie: bool = False) -> FastAPI:
    """The console's routes over the board; actions (approvals, drafts, lookups) are added by actions.py."""
    app = FastAPI(title="Countermand console", version="1", docs_url=None, redoc_url=None)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    install_health(app, lambda: feed.caught_up)
    install_metrics(app)
    _install_refusals(app)

    def session(request: Request) -> Session:
        return session_of(guard, request)

    app.state.session = session
    app.state.board = board
    app.state.feed = feed

    @app.get("/login", response_class=HTMLResponse)
    async def login_form(request: Request, message: str = "", next: str = "/") -> HTMLResponse:
        return page(request, "login.html", None, message=message, next=local_path(next))

    @app.post("/login", response_class=HTMLResponse)
    async def login(request: Request) -> Response:
        form = await form_of(request)
        token, target = form.get("token", "").strip(), local_path(form.get("next"))
        try:
            guard.authenticate(f"Bearer {token}", None) if token else None
        except AuthError as exc:
            return page(request, "login.html", None, 401, message=f"Sign-in refused: {exc.reason}.", next=target)
        if not token:
            return page(request, "login.html", None, 401, message="Paste a token to sign in.", next=target)
        done = RedirectResponse(target, status_code=303)
        done.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=secure_cookie, path="/")
        return done

    @app.post("/logout")
    async def logout() -> Response:
        done = RedirectResponse(login_url("Signed out.", "/"), status_code=303)
        done.delete_cookie(COOKIE, path="/")
        return done

    @app.get("/", include_in_schema=False)
    async def home() -> Response:
        return RedirectResponse("/directives", status_code=303)

    @app.get("/directives", response_class=HTMLResponse)
    async def directives(request: Request) -> HTMLResponse:
        rows = [directive_summary(d) for d in board.listing()]
        return page(request, "directives.html", session(request), rows=rows, broker=feed.broker.as_json())

    @app.get("/directives/{directive_id}", response_class=HTMLResponse)
    async def directive(request: Request, directive_id: str) -> HTMLResponse:
        who = session(request)
        record = board.directive(directive_id)
        if record is None:
            return page(request, "missing.html", who, 404, what=f"No directive {directive_id!r} has been issued.")
        return page(request, "directive.html", who, d=directive_detail(record), broker=feed.broker.as_json())

    @app.get("/live", response_class=HTMLResponse)
    async def live(request: Request) -> HTMLResponse:
        rows = [directive_summary(d) for d in board.listing()]
        clusters = sorted(board.clusters)
        return page(request, "live.html", session(request), rows=rows, clusters=clusters, broker=feed.broker.as_json())

    @app.get("/clusters", response_class=HTMLResponse)
    async def clusters(request: Request) -> HTMLResponse:
        now = datetime.now(UTC)
        rows = [cluster_view(c, now) for _, c in sorted(board.clusters.items())]
        return page(request, "clusters.html", session(request), rows=rows, broker=feed.broker.as_json())

    @app.get("/audit", response_class=HTMLResponse)
    async def audit(request: Request, directive: str = "") -> HTMLResponse:
        who = session(request)
        timeline = [e for e in board.timeline if not directive or e["directive_id"] == directive]
        return page(
            request,
            "audit.html",
            who,
            timeline=list(reversed(timeline)),
            directive=directive,
            checkpoints=checkpoint_status(board),
            broker=feed.broker.as_json(),
        )

    @app.get("/audit/report.json")
    async def audit_report(request: Request, directive: str = "") -> JSONResponse:
        """The timeline and the checkpoints as the console read them, as a file to keep."""
        session(request)
        timeline = [e for e in board.timeline if not directive or e["directive_id"] == directive]
        name = f"countermand-timeline{'-' + directive if directive else ''}.json"
        return JSONResponse(
            {"directive": directive or None, "timeline": timeline, "checkpoints": checkpoint_status(board)},
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    @app.get("/api/board")
    async def board_json(request: Request) -> JSONResponse:
        """The board as JSON (what the pages show)."""
        session(request)
        now = datetime.now(UTC)
        return JSONResponse(
            {
                "directives": [directive_summary(d) for d in board.listing()],
                "clusters": [cluster_view(c, now) for _, c in sorted(board.clusters.items())],
                "broker": feed.broker.as_json(),
            }
        )

    @app.get("/api/session")
    async def whoami(request: Request) -> JSONResponse:
        """Who is signed in (401 once the session has expired: the live pages ask after a dropped stream)."""
        try:
            who = session(request)
        except LoginNeeded as exc:
            return JSONResponse({"error": exc.message, "login": login_url(exc.message, "/live")}, status_code=401)
        return JSONResponse({"subject": who.subject, "roles": sorted(who.principal.roles)})

    @app.get("/events")
    async def events(request: Request) -> Response:
        """Server-sent events: `directive`, `cluster` and `broker` changes as they are read from Kafka."""
        try:
            session(request)
        except LoginNeeded as exc:
            return JSONResponse({"error": exc.message}, status_code=401)
        ends = _token_end(request.cookies.get(COOKIE), guard.settings.leeway_s)
        return StreamingResponse(
            _stream(hub, request, lambda: feed.broker.as_json(), ends),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    return app


def _token_end(token: str | None, leeway_s: float) -> float | None:
    """When the session's token stops being accepted (its exp plus the tolerated skew), as a Unix time; None for
    no token (authentication off). The token was verified just before: its claims are only read here."""
    if not token:
        return None
    exp = jwt.decode(token, options={"verify_signature": False}).get("exp")
    return None if exp is None else float(exp) + leeway_s


async def _stream(
    hub: Hub, request: Request, broker: Callable[[], dict[str, Any]], ends: float | None = None
) -> AsyncIterator[str]:
    """The events for one open page, until it goes away or its session expires (the page's script then finds
    /api/session refusing it and goes to the login page)."""
    stream = hub.open()
    try:
        yield "retry: 1000\n\n"
        yield f"event: broker\ndata: {json.dumps(broker())}\n\n"  # the state now: the page may be older
        while stream in hub.streams and not await request.is_disconnected():
            left = KEEPALIVE_S if ends is None else min(KEEPALIVE_S, ends - time.time())
            if left <= 0:
                return
            try:
                item = await asyncio.wait_for(stream.get(), left)
            except TimeoutError:
                yield ": keepalive\n\n"
                continue
            event, data = item
            yield f"event: {event}\ndata: {data}\n\n"
    finally:
        hub.close(stream)


def _install_refusals(app: FastAPI) -> None:
    async def to_login(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoginNeeded)
        done = RedirectResponse(login_url(exc.message, exc.back_to), status_code=303)
        done.delete_cookie(COOKIE, path="/")
        return done

    async def forbidden(request: Request, exc: Exception) -> Response:
        who = session_of_or_none(app, request)
        return page(request, "missing.html", who, 403, what=f"Not allowed: {exc}.")

    async def bad_form(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, BadForm)
        who = session_of_or_none(app, request)
        return page(request, "missing.html", who, exc.status, what=f"The form was not read: {exc}.")

    app.add_exception_handler(BadForm, bad_form)
    app.add_exception_handler(LoginNeeded, to_login)
    app.add_exception_handler(Forbidden, forbidden)

    @app.middleware("http")
    async def cross_site(request: Request, call_next: Callable) -> Response:
        if request.method == "POST" and not same_origin(request):
            return JSONResponse({"error": "cross-site request refused"}, status_code=403)
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("Content-Security-Policy", CSP)
        return response


def session_of_or_none(app: FastAPI, request: Request) -> Session | None:
    try:
        return app.state.session(request)
    except LoginNeeded:
        return None
