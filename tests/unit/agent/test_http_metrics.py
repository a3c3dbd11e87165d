"""The agent's /metrics: open like /healthz; the access checks counted on every path (hot, FastAPI, batch, not
ready) reach the counter in one batch at scrape time; the control plane's age."""

from __future__ import annotations

from datetime import timedelta

import httpx
from prometheus_client import REGISTRY

from services.agent.http import access_api
from shared.runtime.auth import AuthSettings, Guard
from tests.unit.agent.builders import held_checker
from tests.unit.agent.test_http import NOW

OPEN = Guard(AuthSettings(mode="off"), "agent")


def checks(cluster: str, decision: str) -> float:
    return REGISTRY.get_sample_value("countermand_access_checks_total", {"cluster": cluster, "decision": decision}) or 0


async def test_checks_are_counted_by_decision_and_exported_when_scraped() -> None:
    checker, state = held_checker(True)
    checker.heard(NOW - timedelta(seconds=7))
    front = access_api(checker, state.describe, lambda: NOW, None, OPEN, "c-metrics")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=front), base_url="http://agent") as client:
        await client.get("/v1/access", params={"user": 1042, "model": "fable-5"})  # deny
        await client.get("/v1/access", params={"user": 1043, "model": "fable-5"})  # allow
        assert front.answer(1042, "fable-5")[0] == 200  # what the HTTP protocol's hot path calls: deny
        batch = {"checks": [{"user": 1042, "model": "fable-5"}, {"user": 1042, "model": "mythos-5"}]}
        await client.post("/v1/access:batch", json=batch)  # deny, allow
        assert checks("c-metrics", "deny") == 0  # not yet: counted as plain ints until a scrape
        scrape = await client.get("/metrics")
    assert scrape.status_code == 200
    assert 'countermand_access_checks_total{cluster="c-metrics",decision="deny"} 3.0' in scrape.text
    assert (checks("c-metrics", "deny"), checks("c-metrics", "allow")) == (3, 2)
    age = REGISTRY.get_sample_value("countermand_agent_control_plane_age_seconds", {"cluster": "c-metrics"})
    assert age == 7


async def test_checks_refused_before_ready_are_counted_as_not_ready() -> None:
    checker, state = held_checker(False)
    front = access_api(checker, state.describe, lambda: NOW, None, OPEN, "c-not-ready")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=front), base_url="http://agent") as client:
        assert (await client.get("/v1/access", params={"user": 1, "model": "fable-5"})).status_code == 503
        assert (await client.get("/metrics")).status_code == 200
    assert checks("c-not-ready", "not_ready") == 1
