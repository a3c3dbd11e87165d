"""The console over a real intake API (in memory, four eyes enforced by intake itself) and stub impact and audit
services, each reached through httpx's ASGI transport; a local token issuer both trust."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.console.actions import add_actions
from services.console.board import Board
from services.console.feed import Feed, Hub
from services.console.pages import create_app
from services.console.upstream import Upstream
from services.console.views import render_key
from services.intake.api import create_api
from services.intake.desk import DirectiveDesk
from shared.contracts.audit import AuditCheckpoint, SignedTreeHead
from shared.contracts.catalogue import ACKS, AUDIT, DIRECTIVES, ENFORCEMENT, Topic
from shared.contracts.directives import DirectiveIssued
from shared.contracts.enforcement import ClusterProgress, DirectiveEnforced, EnforcementProgressed
from shared.contracts.envelope import envelope
from shared.contracts.serving import AgentHeartbeat, CommandApplied, HeldDirective
from shared.runtime.auth import AuthSettings, Guard, LocalIssuer, Role
from shared.runtime.settings import KafkaSettings

T0 = datetime(2026, 12, 7, 5, 0, tzinfo=UTC)
SCOPE = {"models": ["fable-5", "mythos-5"], "selector": {"kind": "foreign_national", "home_country": "US"}}


class PublishedDirectives:
    """Intake's directive topic, in memory."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    async def publish(self, event: Any) -> None:
        self.events.append(event)


class StubImpact:
    """Impact's preview route: a fixed blast radius for a valid draft, intake-style 422s for a bad one."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.app = FastAPI()

        @self.app.post("/directives/preview")
        async def preview(request: Request) -> JSONResponse:
            body = await request.json()
            self.calls.append({"body": body, "authorization": request.headers.get("authorization")})
            scope = body.get("scope", {})
            if scope.get("selector", {}).get("home_country") == "XX":
                problems = [{"field": "scope.selector.home_country", "message": "'XX' is not a country code"}]
                return JSONResponse({"error": "invalid request", "problems": problems}, status_code=422)
            answer = {
                "directive_id": body["directive_id"],
                "affected_by_model": {"fable-5": 412, "mythos-5": 398},
                "affected_users": 415,
                "by_country": {"US": 200, "DE": 120, "IN": 95},
                "by_account_type": {"consumer": 300, "employee": 15, "enterprise_member": 100},
                "unknown_only": 17,
                "sample": [3, 8, 13],
                "losing_by_model": {"fable-5": 157, "mythos-5": 61},
                "losing_users": 171,
                "losing_by_country": {"US": 90, "DE": 51, "IN": 30},
                "losing_by_account_type": {"consumer": 140, "employee": 9, "enterprise_member": 22},
            }
            if body["directive_id"] == "EXP-1":  # in force: the draft amends it
                answer |= {
                    "amends_revision": 1,
                    "added_by_model": {"fable-5": 12, "mythos-5": 0},
                    "removed_by_model": {"fable-5": 33, "mythos-5": 4},
                    "losing_added_by_model": {"fable-5": 7, "mythos-5": 0},
                    "losing_removed_by_model": {"fable-5": 19, "mythos-5": 2},
                }
            return JSONResponse(answer)


class StubAudit:
    """The audit's explain route, answering as `countermand audit explain --json` does."""

    def __init__(self) -> None:
        self.calls: list[dict[str, str]] = []
        self.app = FastAPI()

        @self.app.get("/v1/explain")
        async def explain(user: int, model: str, at: str) -> dict[str, Any]:
            self.calls.append({"user": str(user), "model": model, "at": at})
            return {
                "user": user,
                "model": model,
                "at": at,
                "denied_everywhere": True,
                "clusters": {"us-east": {"decision": "denied", "by": ["EXP-1"]}},
                "registry_record": None,
                "directives": [
                    {
                        "directive_id": "EXP-1",
                        "revision": 1,
                        "issued_at": T0.isoformat(),
                        "proposed_by": "alice",
                        "approved_by": ["bob"],
                        "covered": True,
                        "notice": {"requested": True, "delivered": True, "failed": None, "events": []},
                    }
                ],
            }


class Console:
    """The console's app with a board the test fills, real intake behind it, stub impact and audit."""

    def __init__(
        self,
        folder: Path,
        *,
        unreachable: bool = False,
        audit: FastAPI | None = None,
        issuer: LocalIssuer | None = None,
    ) -> None:
        self.issuer = issuer or LocalIssuer()
        settings = AuthSettings(mode="on", jwks_file=self.issuer.write(folder), issuer=self.issuer.issuer)
        self.directives = PublishedDirectives()
        self.desk = DirectiveDesk(self.directives.publish, approvals_needed=1)
        self.desk.expect({})
        self.intake = create_api(self.desk, Guard(settings, "intake"))
        self.impact, self.audit = StubImpact(), StubAudit()
        self.board, self.hub = Board(), Hub()
        self.feed = Feed(KafkaSettings(), self.board, self.hub, lambda key: render_key(self.board, key, T0))
        self.app = create_app(self.board, self.feed, self.hub, Guard(settings, "console"))
        if unreachable:  # every other service at an address where nothing listens
            nowhere = httpx.AsyncClient(timeout=5)
            add_actions(self.app, *(Upstream(n, "http://127.0.0.1:9", nowhere) for n in ("intake", "impact", "audit")))
        else:
            add_actions(
                self.app,
                self._upstream("intake", self.intake),
                self._upstream("impact", self.impact.app),
                self._upstream("audit", audit or self.audit.app),
            )

    @staticmethod
    def _upstream(name: str, app: FastAPI) -> Upstream:
        return Upstream(name, "http://" + name, httpx.AsyncClient(transport=httpx.ASGITransport(app=app)))

    def browser(self) -> httpx.AsyncClient:
        """A browser: keeps cookies, does not follow redirects (the tests look at them)."""
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://console")

    async def signed_in(self, subject: str, *roles: Role, ttl_s: float = 3600) -> httpx.AsyncClient:
        browser = self.browser()
        reply = await browser.post("/login", data={"token": self.issuer.mint(subject, roles, ttl_s=ttl_s)})
        assert reply.status_code == 303, reply.text
        return browser

    def fold(self, topic: Topic, message: Any) -> None:
        self.feed.fold(topic, message.model_dump_json().encode())


def issued(directive_id: str = "EXP-1", revision: int = 1, **fields: Any) -> DirectiveIssued:
    values: dict[str, Any] = {
        "directive_id": directive_id,
        "revision": revision,
        "title": "Export control",
        "authority": "Order 2026/17",
        "scope": SCOPE,
        "proposed_by": "alice",
        "approved_by": ["bob"],
        **fields,
    }
    return DirectiveIssued(**envelope("intake", occurred_at=T0), **values)


def progressed(directive_id: str = "EXP-1", **states: str) -> EnforcementProgressed:
    return EnforcementProgressed(
        **envelope("enforcement", occurred_at=T0),
        directive_id=directive_id,
        revision=1,
        action="restrict",
        expected_digest="d" * 64,
        clusters={c: ClusterProgress(state=s, attempts=1) for c, s in states.items()},  # type: ignore[arg-type]
        deadline=T0 + timedelta(seconds=120),
    )


def enforced(directive_id: str = "EXP-1", *clusters: str) -> DirectiveEnforced:
    return DirectiveEnforced(
        **envelope("enforcement", occurred_at=T0 + timedelta(seconds=2)),
        directive_id=directive_id,
        revision=1,
        action="restrict",
        digest="d" * 64,
        clusters={c: ClusterProgress(state="applied", attempts=1, digest="d" * 64) for c in clusters},
        ack_latency_s={c: 0.5 + i for i, c in enumerate(clusters)},
    )


def heartbeat(cluster_id: str = "us-east", at: datetime = T0) -> AgentHeartbeat:
    return AgentHeartbeat(
        **envelope("agent", occurred_at=at),
        cluster_id=cluster_id,
        region="us-east-1",
        models=["fable-5"],
        held={"EXP-1": HeldDirective(revision=1, digest="d" * 64)},
        ready=True,
    )


def applied(cluster_id: str = "us-east") -> CommandApplied:
    return CommandApplied(
        **envelope("agent", occurred_at=T0),
        cluster_id=cluster_id,
        directive_id="EXP-1",
        revision=1,
        action="restrict",
        digest="d" * 64,
    )


def checkpoint(entries: int, head: str, *, signed: bool) -> AuditCheckpoint:
    tree_head = (
        SignedTreeHead(size=entries, root=head, signed_at=T0, key_id="audit-dev", signature="c2ln") if signed else None
    )
    return AuditCheckpoint(
        **envelope("audit", occurred_at=T0 + timedelta(seconds=entries)),
        entries=entries,
        head_hash=head,
        tree_head=tree_head,
    )


TOPICS = {"directives": DIRECTIVES, "enforcement": ENFORCEMENT, "acks": ACKS, "audit": AUDIT}
