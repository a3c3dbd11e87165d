"""The HTTP API: 503 until ready (never allow), decisions afterwards, bad parameters named."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from services.agent.http import access_api
from shared.runtime.auth import AuthSettings, Guard
from tests.unit.agent.builders import held_checker

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
OPEN = Guard(AuthSettings(mode="off"), "agent")  # who may call: tests/unit/agent/test_http_auth.py


def _client(ready: bool) -> httpx.AsyncClient:
    checker, state = held_checker(ready)
    api = access_api(checker, state.describe, lambda: NOW, None, OPEN)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://agent")


async def test_access_is_refused_with_503_until_ready() -> None:
    async with _client(ready=False) as client:
        assert (await client.get("/v1/access", params={"user": 1, "model": "fable-5"})).status_code == 503
        batch = await client.post("/v1/access:batch", json={"checks": [{"user": 1, "model": "fable-5"}]})
        assert batch.status_code == 503
        assert (await client.get("/readyz")).status_code == 503
        assert (await client.get("/healthz")).status_code == 200


async def test_access_denies_held_pairs_and_allows_others() -> None:
    async with _client(ready=True) as client:
        denied = await client.get("/v1/access", params={"user": 1042, "model": "fable-5"})
        assert denied.json() == {"user": 1042, "model": "fable-5", "decision": "deny", "directives": ["D1"]}
        allowed = await client.get("/v1/access", params={"user": 1043, "model": "fable-5"})
        assert allowed.json()["decision"] == "allow"
        batch = await client.post(
            "/v1/access:batch",
            json={"checks": [{"user": 1042, "model": "fable-5"}, {"user": 1042, "model": "mythos-5"}]},
        )
        assert [r["decision"] for r in batch.json()["results"]] == ["deny", "allow"]
        assert (await client.get("/readyz")).status_code == 200
        state = (await client.get("/v1/state")).json()
        assert state["directives"]["D1"]["users"] == {"fable-5": 1}


async def test_bad_parameters_are_rejected_naming_the_parameter() -> None:
    async with _client(ready=True) as client:
        for params, name in [
            ({"model": "fable-5"}, "user"),
            ({"user": -1, "model": "fable-5"}, "user"),
            ({"user": "x", "model": "fable-5"}, "user"),
            ({"user": 1}, "model"),
            ({"user": 1, "model": "Fable 5!"}, "model"),
        ]:
            response = await client.get("/v1/access", params=params)
            assert response.status_code == 422, params
            assert [e["loc"][-1] for e in response.json()["detail"]] == [name], params


async def test_a_batch_over_the_limit_is_rejected() -> None:
    async with _client(ready=True) as client:
        response = await client.post("/v1/access:batch", json={"checks": [{"user": 1, "model": "fable-5"}] * 10_001})
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "checks"]


async def test_the_fast_access_path_answers_exactly_like_the_documented_api() -> None:
    async with _client(ready=True) as client:
        front = client._transport.app
        documented = httpx.AsyncClient(transport=httpx.ASGITransport(app=front.api), base_url="http://agent")
        async with documented:
            for query in [
                "user=1042&model=fable-5",
                "model=fable-5&user=1042",
                "user=7&model=mythos-5",
                "user=4294967295&model=fable-5",
                "user=4294967296&model=fable-5",
                "user=1&model=x&y=2",
            ]:
                fast, slow = await client.get(f"/v1/access?{query}"), await documented.get(f"/v1/access?{query}")
                assert (fast.status_code, fast.json()) == (slow.status_code, slow.json()), query
