"""The HTTP API over a desk with a fake topic: status codes and problem bodies, nothing published on error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from services.intake.api import create_api
from services.intake.desk import DirectiveDesk
from shared.runtime.auth import Role
from tests.unit.intake.fakes import Callers, FakeTopic


@pytest.fixture
def topic() -> FakeTopic:
    return FakeTopic()


@pytest.fixture
def callers(tmp_path: Path) -> Callers:
    return Callers(tmp_path)


@pytest.fixture
async def http(topic: FakeTopic, callers: Callers) -> httpx.AsyncClient:
    """A client calling as alice, a proposer."""
    desk = DirectiveDesk(topic.publish)
    desk.expect({})
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_api(desk, callers.guard)),
        base_url="http://t",
        headers=callers.headers("alice", Role.PROPOSER),
    ) as client:
        yield client


def body(**scope: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"models": ["fable-5"], "selector": {"kind": "foreign_national", "home_country": "US"}}
    values.update(scope)
    return {"directive_id": "EXP-1", "title": "t", "scope": values}


async def test_a_proposal_answers_202_with_the_revision_it_would_become(
    http: httpx.AsyncClient, topic: FakeTopic
) -> None:
    response = await http.post("/directives", json=body())
    assert response.status_code == 202
    [proposed] = topic.events
    assert response.json() == {
        "directive_id": "EXP-1",
        "revision": 1,
        "event_id": proposed.event_id,
        "state": "proposed",
        "unchanged": False,
        "proposal_id": proposed.proposal_id,
        "proposed_by": "alice",
        "approved_by": [],
        "approvals_needed": 1,
        "expires_at": proposed.expires_at.isoformat(),
        "emergency": False,
    }


async def test_a_body_that_is_not_an_object_is_422(http: httpx.AsyncClient, topic: FakeTopic) -> None:
    response = await http.post("/directives", json=["EXP-1"])
    assert response.status_code == 422 and response.json()["problems"]
    assert topic.events == []


async def test_truncated_json_is_400_naming_the_position(http: httpx.AsyncClient, topic: FakeTopic) -> None:
    response = await http.post(
        "/directives", content=b'{"directive_id": "EXP-1"', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert "malformed JSON at character" in response.json()["problems"][0]["message"]
    assert topic.events == []


async def test_a_naive_timestamp_is_named(http: httpx.AsyncClient, topic: FakeTopic) -> None:
    response = await http.post("/directives", json=body(effective_from="2026-12-01T00:00:00"))
    assert response.status_code == 422
    assert [p["field"] for p in response.json()["problems"]] == ["scope.effective_from"]
    assert topic.events == []


async def test_a_lift_reason_of_the_wrong_type_is_named(http: httpx.AsyncClient, topic: FakeTopic) -> None:
    await http.post("/directives", json=body())
    response = await http.post("/directives/EXP-1/lift", json={"reason": ["x"]})
    assert response.status_code == 422
    assert [p["field"] for p in response.json()["problems"]] == ["reason"]
    assert [e.type for e in topic.events] == ["DirectiveProposed"]


async def test_a_failed_publish_is_503(http: httpx.AsyncClient, topic: FakeTopic) -> None:
    topic.failing = True
    response = await http.post("/directives", json=body())
    assert response.status_code == 503 and "could not publish" in response.json()["error"]


async def test_not_ready_is_503_and_readyz_says_so(topic: FakeTopic, callers: Callers) -> None:
    desk = DirectiveDesk(topic.publish)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_api(desk, callers.guard)),
        base_url="http://t",
        headers=callers.headers("alice", Role.PROPOSER),
    ) as http:
        assert (await http.get("/readyz")).status_code == 503
        assert (await http.post("/directives", json=body())).status_code == 503
    assert topic.events == []
