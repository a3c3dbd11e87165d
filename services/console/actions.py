"""The console's actions, each forwarded with the user's token: approvals (intake), drafts and dry runs (impact,
then intake), customer lookups (audit). The other services decide; the console shows what they answered."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import yaml
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from services.console.charts import bar_chart
from services.console.pages import page
from services.console.session import BadForm, Session, form_of, requires
from services.console.upstream import Upstream
from shared.runtime.auth import Role

UPLOAD = "directive_file"
READERS = (Role.VIEWER, Role.AUDITOR, Role.PROPOSER, Role.APPROVER, Role.EMERGENCY)


def add_actions(app: FastAPI, intake: Upstream, impact: Upstream, audit: Upstream) -> None:
    """GET/POST /approvals, POST /directives/{id}/lift, GET/POST /draft, GET /lookup, GET /audit/reports/{id}."""
    session = app.state.session

    async def approvals_page(request: Request, who: Session, status: int = 200, **notice: Any) -> HTMLResponse:
        reply = await intake.call("GET", "/proposals", who.headers)
        proposals = reply.body if reply.ok and isinstance(reply.body, list) else []
        error = None if reply.ok else f"The approvals queue could not be read: {reply.error}"
        return page(request, "approvals.html", who, status, proposals=proposals, load_error=error, **notice)

    @app.get("/approvals", response_class=HTMLResponse)
    async def approvals(request: Request) -> HTMLResponse:
        who = session(request)
        requires(who, *READERS)
        return await approvals_page(request, who)

    @app.post("/approvals/{proposal_id}/{decision}", response_class=HTMLResponse)
    async def decide(request: Request, proposal_id: str, decision: str) -> HTMLResponse:
        who = session(request)
        if decision not in ("approve", "reject"):
            return await approvals_page(request, who, 404, failed=f"unknown decision {decision!r}")
        form = await form_of(request)
        reason = form.get("reason", "").strip()
        body = {"reason": reason} if reason or decision == "reject" else {}
        reply = await intake.call("POST", f"/proposals/{proposal_id}/{decision}", who.headers, json=body)
        if reply.ok:
            state = reply.body.get("state", "") if isinstance(reply.body, dict) else ""
            done = f"{'Approved' if decision == 'approve' else 'Rejected'} proposal {proposal_id}: now {state}."
            return await approvals_page(request, who, done=done)
        problems = "; ".join(p.get("message", "") for p in reply.problems) or reply.error
        status = reply.status or 502
        return await approvals_page(
            request, who, status, failed=f"Intake refused to {decision} {proposal_id}: {problems}"
        )

    @app.post("/directives/{directive_id}/lift", response_class=HTMLResponse)
    async def propose_lift(request: Request, directive_id: str) -> HTMLResponse:
        who = session(request)
        requires(who, Role.PROPOSER)
        reason = (await form_of(request)).get("reason", "").strip()
        reply = await intake.call("POST", f"/directives/{directive_id}/lift", who.headers, json={"reason": reason})
        if reply.ok:
            return await approvals_page(request, who, done=f"Proposed the lift of {directive_id}: {_proposal(reply)}.")
        problems = "; ".join(f"{p.get('field')}: {p.get('message')}" for p in reply.problems) or reply.error
        return await approvals_page(request, who, _status(reply), failed=f"Intake refused the lift: {problems}")

    @app.get("/draft", response_class=HTMLResponse)
    async def draft_form(request: Request) -> HTMLResponse:
        who = session(request)
        requires(who, Role.PROPOSER, Role.APPROVER, Role.VIEWER)
        return page(request, "draft.html", who, text="", problems=[], preview=None)

    @app.post("/draft", response_class=HTMLResponse)
    async def draft(request: Request) -> HTMLResponse:
        who = session(request)
        requires(who, Role.PROPOSER, Role.APPROVER, Role.VIEWER)
        try:
            form = await form_of(request)
        except BadForm as exc:
            problems = [{"field": exc.field, "message": exc.message}]
            return page(request, "draft.html", who, exc.status, text="", problems=problems, preview=None)
        # An uploaded file (sent as a multipart form, with or without script) stands for the pasted text.
        text, action = form.get(UPLOAD) or form.get("directive", ""), form.get("action", "preview")
        body, problems = parse_directive(text)
        if problems:
            return page(request, "draft.html", who, 422, text=text, problems=problems, preview=None)
        if action == "propose":
            requires(who, Role.PROPOSER)
            reply = await intake.call("POST", "/directives", who.headers, json=body)
            if reply.ok:
                return page(request, "draft.html", who, text=text, problems=[], preview=None, proposed=reply.body)
            return page(request, "draft.html", who, _status(reply), text=text, problems=_problems(reply), preview=None)
        reply = await impact.call("POST", "/directives/preview", who.headers, json=body)
        if not reply.ok:
            return page(request, "draft.html", who, _status(reply), text=text, problems=_problems(reply), preview=None)
        return page(request, "draft.html", who, text=text, problems=[], preview=preview_view(reply.body))

    @app.get("/lookup", response_class=HTMLResponse)
    async def lookup(request: Request, user: str = "", model: str = "", at: str = "") -> HTMLResponse:
        who = session(request)
        requires(who, Role.AUDITOR, Role.VIEWER, Role.APPROVER)
        asked = {"user": user, "model": model, "at": at}
        if not (user or model or at):
            return page(request, "lookup.html", who, asked=asked, problems=[], answer=None)
        problems = [
            {"field": name, "message": "required"} for name in ("user", "model", "at") if not asked[name].strip()
        ]
        if user.strip() and not user.strip().isdigit():
            problems.append({"field": "user", "message": "a user id is a whole number"})
        if problems:
            return page(request, "lookup.html", who, 422, asked=asked, problems=problems, answer=None)
        reply = await audit.call("GET", "/v1/explain", who.headers, params={"user": user, "model": model, "at": at})
        if not reply.ok:
            return page(
                request, "lookup.html", who, _status(reply), asked=asked, problems=_problems(reply), answer=None
            )
        return page(request, "lookup.html", who, asked=asked, problems=[], answer=reply.body)

    @app.get("/audit/reports/{directive_id}")
    async def audit_report(request: Request, directive_id: str, format: str = "json") -> Response:
        """The audit's report of a directive (JSON or HTML) as the audit service renders it, as a download."""
        who = session(request)
        requires(who, Role.AUDITOR)
        if format not in ("json", "html"):
            return page(request, "missing.html", who, 422, what=f"format: {format!r} is not json or html.")
        reply = await audit.call(
            "GET", f"/v1/reports/{quote(directive_id, safe='')}", who.headers, params={"format": format}
        )
        if not reply.ok:
            problems = "; ".join(f"{p.get('field')}: {p.get('message')}" for p in reply.problems) or reply.error
            what = f"The audit has no report of {directive_id!r}: {problems}."
            return page(request, "missing.html", who, _status(reply), what=what)
        name = f"countermand-report-{directive_id}.{format}"
        return Response(
            reply.raw,
            media_type=reply.content_type or "application/octet-stream",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )


def parse_directive(text: str) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """A pasted directive (YAML or JSON) as the request body; problems naming what is wrong with the text."""
    if not text.strip():
        return {}, [{"field": "(directive)", "message": "paste or upload a directive (YAML or JSON)"}]
    try:
        body = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        return {}, [{"field": "(directive)", "message": f"not valid YAML or JSON{where}"}]
    if not isinstance(body, dict):
        return {}, [
            {"field": "(directive)", "message": "a directive is a mapping of fields (directive_id, title, scope)"}
        ]
    return json.loads(json.dumps(body, default=str)), []


def preview_view(answer: dict[str, Any]) -> dict[str, Any]:
    """Impact's dry-run answer with its charts: users covered, and users losing access (covered and entitled to the
    model), per model, by country of residence and by account type; per model, the amendment's difference."""
    losing = answer.get("losing_by_model")
    models = sorted(set(answer.get("affected_by_model", {})) | set(losing or {}))
    columns = ("added_by_model", "removed_by_model", "losing_added_by_model", "losing_removed_by_model")
    rows = [
        {
            "model": m,
            "covered": answer.get("affected_by_model", {}).get(m, 0),
            "losing": None if losing is None else losing.get(m, 0),
            **{c: (answer.get(c) or {}).get(m, 0) for c in columns},
        }
        for m in models
    ]
    views = (
        ("model", "Model", "affected_by_model", "losing_by_model"),
        ("country", "Country of residence", "by_country", "losing_by_country"),
        ("account", "Account type", "by_account_type", "losing_by_account_type"),
    )
    charts = []
    for cid, label, covered_key, losing_key in views:
        what = "per model" if cid == "model" else f"by {label.lower()}"
        charts.append((f"by-{cid}", label, bar_chart(answer.get(covered_key) or {}, f"Users covered {what}")))
        if losing is not None:
            chart = bar_chart(answer.get(losing_key) or {}, f"Users losing access {what}")
            charts.append((f"losing-by-{cid}", label, chart))
    return {**answer, "models": rows, "charts": charts}


def _problems(reply: Any) -> list[dict[str, str]]:
    found = reply.problems
    return found or [{"field": "(request)", "message": reply.error}]


def _proposal(reply: Any) -> str:
    body = reply.body if isinstance(reply.body, dict) else {}
    return f"proposal {body.get('proposal_id')} awaits approval by someone else"


def _status(reply: Any) -> int:
    return reply.status if reply.status >= 400 else 502
