"""The HTTP edge: bodies limited while streaming, decoded and parsed within the limits, refusals that say why."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from devtools.limits import directive_at_limits, not_chain
from services.intake.api import create_api
from services.intake.desk import DirectiveDesk
from shared.contracts.limits import MAX_BODY_BYTES
from shared.runtime.auth import AuthSettings, Guard
from shared.runtime.request_body import BodyLimit
from tests.unit.intake.fakes import FakeTopic

CHUNK = 64 * 1024


@pytest.fixture
def topic() -> FakeTopic:
    return FakeTopic()


@pytest.fixture
async def http(topic: FakeTopic) -> httpx.AsyncClient:
    desk = DirectiveDesk(topic.publish)
    desk.expect({})
    guard = Guard(AuthSettings(mode="off"), "intake")  # the body limits come before any caller is known
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_api(desk, guard)), base_url="http://t"
    ) as client:
        yield client


def directive(**changes: Any) -> dict[str, Any]:
    body = {
        "directive_id": "EXP-1",
        "title": "t",
        "scope": {"models": ["fable-5"], "selector": {"kind": "foreign_national", "home_country": "US"}},
    }
    body.update(changes)
    return body


async def call(app: Any, chunks: list[bytes], headers: list[tuple[bytes, bytes]] = ()) -> tuple[int, int]:
    """Drive an ASGI app with a body in chunks: (status answered, chunks the app read)."""
    sent: list[dict] = []
    read = 0

    async def receive() -> dict:
        nonlocal read
        read += 1
        return {"type": "http.request", "body": chunks[read - 1], "more_body": read < len(chunks)}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": list(headers), "query_string": b""}
    await app(scope, receive, send)
    return sent[0]["status"], read


async def reads_everything(scope: dict, receive: Any, send: Any) -> None:
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.mark.parametrize("megabytes", [10, 100])
async def test_a_streamed_body_over_the_limit_is_413_before_the_rest_is_read(megabytes: int) -> None:
    chunks = [b"x" * CHUNK] * (megabytes * 1024 * 1024 // CHUNK)
    status, read = await call(BodyLimit(reads_everything), chunks)
    assert status == 413
    assert read == MAX_BODY_BYTES // CHUNK + 1 < len(chunks)


async def test_a_declared_length_over_the_limit_is_413_without_reading_at_all() -> None:
    status, read = await call(BodyLimit(reads_everything), [b"{}"], [(b"content-length", str(100 * 2**20).encode())])
    assert (status, read) == (413, 0)


async def test_a_body_at_the_limit_is_read(topic: FakeTopic) -> None:
    status, _ = await call(BodyLimit(reads_everything), [b"x" * CHUNK] * (MAX_BODY_BYTES // CHUNK))
    assert status == 200


async def test_intake_answers_a_big_body_413_naming_the_limit(http: httpx.AsyncClient, topic: FakeTopic) -> None:
    body = json.dumps(directive(title="t" * (MAX_BODY_BYTES + 1))).encode()
    response = await http.post("/directives", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413 and "MAX_BODY_BYTES" in response.json()["error"]
    assert topic.events == []


async def test_the_directive_at_every_limit_is_accepted(http: httpx.AsyncClient, topic: FakeTopic) -> None:
    response = await http.post("/directives", json=directive_at_limits("LIMITS"))
    assert response.status_code == 202, response.text[:500]
    assert len(topic.events) == 1


@pytest.mark.parametrize(
    "content, headers, status, says",
    [
        (b"", {"content-type": "application/json"}, 400, "empty request body"),
        ("{}".encode("utf-16"), {"content-type": "application/json"}, 400, "UTF-16"),
        (
            json.dumps(directive(title="caf\u00e9"), ensure_ascii=False).encode("latin-1"),
            {"content-type": "application/json"},
            400,
            "not valid UTF-8",
        ),
        (b"{}", {"content-type": "application/json; charset=iso-8859-1"}, 415, "charset"),
        (b"{}", {"content-type": "text/plain"}, 415, "application/json"),
        (b'{"directive_id": ' + b"9" * 10_000 + b"}", {"content-type": "application/json"}, 400, "MAX_NUMBER_CHARS"),
        (b'{"directive_id": NaN}', {"content-type": "application/json"}, 400, "NaN"),
        (
            json.dumps(
                directive(scope={"models": ["fable-5"], "selector": not_chain(250, {"kind": "everyone"})})
            ).encode(),
            {"content-type": "application/json"},
            400,
            "MAX_JSON_DEPTH",
        ),
        (b"[" * 10_000 + b"]" * 10_000, {"content-type": "application/json"}, 400, "MAX_JSON_DEPTH"),
    ],
)
async def test_a_body_that_cannot_be_read_is_refused_saying_why(
    http: httpx.AsyncClient, topic: FakeTopic, content: bytes, headers: dict, status: int, says: str
) -> None:
    response = await http.post("/directives", content=content, headers=headers)
    assert response.status_code == status, response.text
    assert says in response.json()["error"]
    assert topic.events == []


async def test_a_selector_deeper_than_the_limit_but_within_json_depth_is_422_naming_it(
    http: httpx.AsyncClient, topic: FakeTopic
) -> None:
    body = directive(scope={"models": ["fable-5"], "selector": not_chain(60, {"kind": "everyone"})})
    response = await http.post("/directives", json=body)
    assert response.status_code == 422
    assert [(p["field"], "SELECTOR_DEPTH" in p["message"]) for p in response.json()["problems"]] == [
        ("scope.selector", True)
    ]
    assert topic.events == []


async def test_a_list_of_100000_models_is_422_naming_the_limit(http: httpx.AsyncClient, topic: FakeTopic) -> None:
    body = directive(scope={"models": [f"m-{i}" for i in range(100_000)], "selector": {"kind": "everyone"}})
    response = await http.post("/directives", json=body)
    assert response.status_code == 422
    assert [p["field"] for p in response.json()["problems"]] == ["scope.models"]
    assert "MAX_MODELS" in response.json()["problems"][0]["message"]


async def test_a_utf8_bom_is_accepted(http: httpx.AsyncClient, topic: FakeTopic) -> None:
    body = b"\xef\xbb\xbf" + json.dumps(directive(title="caf\u00e9")).encode()
    response = await http.post("/directives", content=body, headers={"content-type": "application/json; charset=utf-8"})
    assert response.status_code == 202, response.text
    assert topic.events[0].title == "caf\u00e9"


async def test_a_lift_without_a_body_is_fine_and_an_idempotency_key_is_checked(
    http: httpx.AsyncClient, topic: FakeTopic
) -> None:
    alone = {"emergency_reason": "test"}  # issued and lifted at once, without four eyes
    await http.post("/directives", json=directive(), params=alone)
    bad = await http.post("/directives/EXP-1/lift", headers={"Idempotency-Key": "k" * 256}, params=alone)
    lifted = await http.post("/directives/EXP-1/lift", headers={"Idempotency-Key": "lift-1"}, params=alone)
    again = await http.post("/directives/EXP-1/lift", headers={"Idempotency-Key": "lift-1"}, params=alone)
    assert bad.status_code == 422 and [p["field"] for p in bad.json()["problems"]] == ["Idempotency-Key"]
    assert (lifted.status_code, again.status_code, again.headers.get("idempotent-replayed")) == (202, 202, "true")
    assert again.json() == lifted.json()
    assert [e.type for e in topic.events] == ["DirectiveIssued", "DirectiveLifted"]


async def test_the_same_key_with_another_body_is_422_naming_the_conflict(
    http: httpx.AsyncClient, topic: FakeTopic
) -> None:
    first = await http.post("/directives", json=directive(), headers={"Idempotency-Key": "k1"})
    other = await http.post("/directives", json=directive(title="other"), headers={"Idempotency-Key": "k1"})
    assert (first.status_code, other.status_code) == (202, 422)
    assert "'k1'" in other.json()["error"] and other.json()["problems"][0]["field"] == "Idempotency-Key"
    assert len(topic.events) == 1


async def test_an_identical_request_without_a_key_is_200_unchanged(http: httpx.AsyncClient, topic: FakeTopic) -> None:
    first = await http.post("/directives", json=directive())
    again = await http.post(
        "/directives", content=json.dumps(directive(), indent=4), headers={"content-type": "application/json"}
    )
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json() == {**first.json(), "unchanged": True}
    assert len(topic.events) == 1
