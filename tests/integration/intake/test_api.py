"""Intake's HTTP API on the real broker: what it publishes, what it refuses, what a restart remembers."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from devtools.observe import TopicReader
from devtools.waiting import eventually
from services.intake.app import IntakeService
from shared.contracts.catalogue import DIRECTIVES, dead_letter_topic, key_of
from shared.contracts.directives import DirectiveIssued, DirectiveLifted, DirectiveScope, ForeignNational
from shared.runtime.kafka import producing
from shared.runtime.settings import KafkaSettings
from tests.integration.intake.conftest import (
    asgi_client,
    directive_events,
    directive_records,
    intake_settings,
    running_intake,
)

pytestmark = pytest.mark.kafka


def directive(directive_id: str, **scope: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "models": ["fable-5", "mythos-5"],
        "selector": {"kind": "foreign_national", "home_country": "US"},
        "unknown_attribute": "restrict",
        "enforcement_deadline_s": 120,
    }
    body.update(scope)
    return {"directive_id": directive_id, "title": "Export control", "authority": "Order 2026/17", "scope": body}


@pytest.fixture
async def intake(bootstrap: str, tmp_path: Path, unique: str) -> IntakeService:
    async with running_intake(intake_settings(bootstrap, tmp_path, unique)) as service:
        yield service


async def test_issue_publishes_a_directive_issued_event(intake: IntakeService, bootstrap: str, unique: str) -> None:
    async with asgi_client(intake) as http:
        response = await http.post("/directives", json=directive(unique))
    assert response.status_code == 202, response.text
    assert response.json()["revision"] == 1
    [event] = await directive_events(bootstrap, unique)
    assert isinstance(event, DirectiveIssued)
    assert (event.directive_id, event.revision, event.producer, event.correlation_id) == (unique, 1, "intake", unique)
    assert event.event_id == response.json()["event_id"]
    assert event.scope.models == ["fable-5", "mythos-5"]
    assert event.scope.selector == ForeignNational(home_country="US")
    assert event.scope.enforcement_deadline_s == 120


async def test_an_amendment_gets_revision_two(intake: IntakeService, bootstrap: str, unique: str) -> None:
    async with asgi_client(intake) as http:
        first = await http.post("/directives", json=directive(unique))
        second = await http.post("/directives", json=directive(unique, models=["fable-5"]))
        shown = await http.get(f"/directives/{unique}")
    assert (first.status_code, second.status_code) == (202, 202)
    assert second.json()["revision"] == 2
    events = await directive_events(bootstrap, unique)
    assert [(e.type, e.revision) for e in events] == [("DirectiveIssued", 1), ("DirectiveIssued", 2)]
    assert events[1].scope.models == ["fable-5"]
    assert shown.json()["revision"] == 2 and shown.json()["scope"]["models"] == ["fable-5"]


async def test_lift_publishes_directive_lifted_at_the_latest_revision(
    intake: IntakeService, bootstrap: str, unique: str
) -> None:
    async with asgi_client(intake) as http:
        await http.post("/directives", json=directive(unique))
        await http.post("/directives", json=directive(unique, models=["fable-5"]))
        lifted = await http.post(f"/directives/{unique}/lift", json={"reason": "Order revoked"})
        listed = await http.get("/directives")
    assert lifted.status_code == 202, lifted.text
    events = await directive_events(bootstrap, unique)
    assert isinstance(events[-1], DirectiveLifted)
    assert (events[-1].revision, events[-1].reason, events[-1].correlation_id) == (2, "Order revoked", unique)
    assert {"directive_id": unique, "revision": 2, "state": "lifted", "title": "Export control"} in listed.json()


async def test_a_lifted_directive_is_neither_reissued_nor_lifted_again(
    intake: IntakeService, bootstrap: str, unique: str
) -> None:
    async with asgi_client(intake) as http:
        await http.post("/directives", json=directive(unique))
        await http.post(f"/directives/{unique}/lift", json={})
        reissued = await http.post("/directives", json=directive(unique))
        lifted_again = await http.post(f"/directives/{unique}/lift")
    assert (reissued.status_code, lifted_again.status_code) == (409, 409)
    assert unique in reissued.json()["error"]
    assert [e.type for e in await directive_events(bootstrap, unique)] == ["DirectiveIssued", "DirectiveLifted"]


async def test_a_restarted_intake_knows_the_directives_published_before_it(
    bootstrap: str, tmp_path: Path, unique: str
) -> None:
    amended, lifted = f"{unique}-a", f"{unique}-b"
    async with running_intake(intake_settings(bootstrap, tmp_path, f"{unique}-1")) as first:
        async with asgi_client(first) as http:
            await http.post("/directives", json=directive(amended))
            await http.post("/directives", json=directive(lifted))
    async with running_intake(intake_settings(bootstrap, tmp_path, f"{unique}-2")) as second:
        async with asgi_client(second) as http:
            assert (await http.get("/readyz")).status_code == 200
            assert (await http.get(f"/directives/{amended}")).json()["revision"] == 1
            amendment = await http.post("/directives", json=directive(amended, models=["fable-5"]))
            lift = await http.post(f"/directives/{lifted}/lift", json={"reason": "done"})
    assert (amendment.status_code, amendment.json()["revision"]) == (202, 2)
    assert (lift.status_code, lift.json()["revision"]) == (202, 1)
    assert [e.type for e in await directive_events(bootstrap, lifted)] == ["DirectiveIssued", "DirectiveLifted"]


async def test_health_and_readiness_answer(intake: IntakeService) -> None:
    async with asgi_client(intake) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        ready = await http.get("/readyz")
    assert (ready.status_code, ready.json()) == (200, {"ready": True})


async def test_a_malformed_json_body_is_refused_and_nothing_published(
    intake: IntakeService, bootstrap: str, unique: str
) -> None:
    async with asgi_client(intake) as http:
        response = await http.post(
            "/directives",
            content=f'{{"directive_id": "{unique}", "title": }}',
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 400
    [problem] = response.json()["problems"]
    assert "malformed JSON" in problem["message"]
    assert await directive_records(bootstrap, unique) == []


async def test_an_invalid_country_code_is_named_and_nothing_published(
    intake: IntakeService, bootstrap: str, unique: str
) -> None:
    body = directive(unique, selector={"kind": "foreign_national", "home_country": "XX"})
    async with asgi_client(intake) as http:
        response = await http.post("/directives", json=body)
    assert response.status_code == 422
    assert response.json()["problems"] == [
        {"field": "scope.selector.home_country", "message": "'XX' is not an ISO 3166-1 alpha-2 country code"}
    ]
    assert await directive_records(bootstrap, unique) == []


async def test_an_unknown_selector_kind_is_named_and_nothing_published(
    intake: IntakeService, bootstrap: str, unique: str
) -> None:
    async with asgi_client(intake) as http:
        response = await http.post("/directives", json=directive(unique, selector={"kind": "religion"}))
    assert response.status_code == 422
    [problem] = response.json()["problems"]
    assert problem["field"] == "scope.selector" and "'religion'" in problem["message"]
    assert await directive_records(bootstrap, unique) == []


async def test_an_empty_model_list_is_refused_and_nothing_published(
    intake: IntakeService, bootstrap: str, unique: str
) -> None:
    async with asgi_client(intake) as http:
        response = await http.post("/directives", json=directive(unique, models=[]))
    assert response.status_code == 422
    assert [p["field"] for p in response.json()["problems"]] == ["scope.models"]
    assert await directive_records(bootstrap, unique) == []


async def test_every_problem_of_a_request_is_listed(intake: IntakeService, bootstrap: str, unique: str) -> None:
    body = directive(unique, models=[], selector={"kind": "residence", "any_of": ["XX"]})
    del body["title"]
    async with asgi_client(intake) as http:
        response = await http.post("/directives", json=body)
    assert response.status_code == 422
    assert {p["field"] for p in response.json()["problems"]} == {"title", "scope.models", "scope.selector.any_of[0]"}
    assert await directive_records(bootstrap, unique) == []


async def test_lifting_an_unknown_directive_is_404_naming_it(
    intake: IntakeService, bootstrap: str, unique: str
) -> None:
    async with asgi_client(intake) as http:
        response = await http.post(f"/directives/{unique}/lift", json={"reason": "x"})
        shown = await http.get(f"/directives/{unique}")
    assert response.status_code == 404 and unique in response.json()["error"]
    assert shown.status_code == 404
    assert await directive_records(bootstrap, unique) == []


async def test_an_invalid_directive_id_in_the_path_is_named(intake: IntakeService) -> None:
    async with asgi_client(intake) as http:
        response = await http.post("/directives/bad%20id/lift")
    assert response.status_code == 422
    assert [p["field"] for p in response.json()["problems"]] == ["directive_id"]


async def test_an_invalid_record_on_the_topic_is_dead_lettered_and_the_view_keeps_going(
    intake: IntakeService, bootstrap: str, tmp_path: Path, unique: str
) -> None:
    later = DirectiveIssued(
        producer="test",
        directive_id=unique,
        revision=3,
        title="from elsewhere",
        scope=DirectiveScope(models=["fable-5"], selector=ForeignNational(home_country="US")),
    )
    async with producing(KafkaSettings(bootstrap=bootstrap), "tests-intake-poison") as producer:
        await producer.send_and_wait(DIRECTIVES.name, b"{not json", key=unique.encode())
        await producer.send_and_wait(DIRECTIVES.name, b'{"type": "DirectiveIssued"}', key=unique.encode())
        await producer.send_and_wait(DIRECTIVES.name, later.model_dump_json().encode(), key=key_of(DIRECTIVES, later))
    async with asgi_client(intake) as http:

        async def known() -> bool:
            return (await http.get(f"/directives/{unique}")).status_code == 200

        await eventually(known, f"intake to know {unique}", timeout=30)
        amendment = await http.post("/directives", json=directive(unique))
    assert amendment.json()["revision"] == 4
    async with running_intake(intake_settings(bootstrap, tmp_path, f"{unique}-late")) as restarted:
        assert restarted.desk.ready and restarted.desk.book.get(unique).revision == 4
    async with TopicReader(bootstrap, dead_letter_topic("intake")) as letters:
        mine = await letters.drain(
            lambda ms: len({m.event_id for m in ms if m.key_b64 == base64.b64encode(unique.encode()).decode()}) >= 2,
            30,
            "two intake dead letters",
        )
    reasons = [m.reason for m in mine if m.key_b64 == base64.b64encode(unique.encode()).decode()]
    assert all(r.startswith("invalid message") or "Invalid JSON" in r or "json" in r.lower() for r in reasons), reasons
