"""Intake's HTTP edge over real HTTP on the real broker: big bodies cut off while streaming, bad bodies refused
with nothing published, repeats answered without a second revision, keys remembered across a restart."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from devtools.limits import deep_directive_json, not_chain
from services.intake.app import IntakeService
from tests.integration.intake.conftest import (
    as_tester,
    directive_events,
    directive_records,
    http_client,
    intake_settings,
    running_intake,
    serving_http,
)

pytestmark = pytest.mark.kafka
CHUNK = 64 * 1024


def directive(directive_id: str, **scope: Any) -> dict[str, Any]:
    body = {"models": ["fable-5"], "selector": {"kind": "foreign_national", "home_country": "US"}}
    body.update(scope)
    return {"directive_id": directive_id, "title": "Edge", "scope": body}


@pytest.fixture
async def served(bootstrap: str, tmp_path: Path, unique: str) -> tuple[IntakeService, str]:
    async with running_intake(intake_settings(bootstrap, tmp_path, unique)) as service:
        async with serving_http(service) as base:
            yield service, base


def stream_until_answered(host: str, port: int, total: int, chunked: bool) -> tuple[bytes, int]:
    """POST a body of `total` bytes (declared or chunked) a chunk at a time, stopping once the server answers:
    (the answer, the bytes sent)."""
    sent = 0
    with socket.create_connection((host, port), timeout=10) as conn:
        framing = b"Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}".encode()
        conn.sendall(
            b"POST /directives HTTP/1.1\r\nHost: intake\r\nContent-Type: application/json\r\n"
            + f"Authorization: {as_tester()['Authorization']}\r\n".encode()
            + framing
            + b"\r\n\r\n"
        )
        conn.setblocking(False)
        answer = b""
        while sent < total:
            try:
                answer += conn.recv(65536)
                if answer:
                    break
            except BlockingIOError:
                pass
            piece = b"x" * CHUNK
            try:
                conn.setblocking(True)
                conn.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece)
                conn.setblocking(False)
            except OSError:
                break  # the server closed the connection after answering
            sent += len(piece)
        conn.setblocking(True)
        conn.settimeout(10)
        try:
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                more = conn.recv(65536)
                if not more:
                    break
                answer += more
        except OSError:
            pass
    return answer, sent


@pytest.mark.parametrize("megabytes, chunked", [(10, False), (100, False), (10, True), (100, True)])
async def test_a_big_body_is_413_before_it_is_read(
    served: tuple[IntakeService, str], megabytes: int, chunked: bool
) -> None:
    service = served[0]
    answer, sent = await asyncio.to_thread(
        stream_until_answered, service.settings.http_host, service.settings.http_port, megabytes * 1024 * 1024, chunked
    )
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"MAX_BODY_BYTES" in answer
    # What was sent past the limit sits in the sockets' kernel buffers: the server stopped reading at the limit
    # (tests/unit/shared/test_request_body.py counts the reads) and answered while the client was still sending.
    assert sent < min(megabytes, 16) * 1024 * 1024


async def test_bad_bodies_are_refused_naming_the_problem_and_nothing_is_published(
    served: tuple[IntakeService, str], bootstrap: str, unique: str
) -> None:
    cases = [
        (b"", "application/json", 400, "empty request body"),
        (json.dumps(directive(unique)).encode("utf-16"), "application/json", 400, "UTF-16"),
        (
            json.dumps(directive(unique, models=["caf\u00e9"]), ensure_ascii=False).encode("latin-1"),
            "application/json",
            400,
            "not valid UTF-8",
        ),
        (json.dumps(directive(unique)).encode(), "application/json; charset=utf-16", 415, "charset"),
        (
            json.dumps(directive(unique))[:-1].encode() + b', "n": ' + b"1" * 10_000 + b"}",
            "application/json",
            400,
            "MAX_NUMBER_CHARS",
        ),
        (deep_directive_json(unique, 250), "application/json", 400, "MAX_JSON_DEPTH"),
        (deep_directive_json(unique, 10_000), "application/json", 400, "MAX_JSON_DEPTH"),
    ]
    async with http_client(served[1]) as http:
        for content, content_type, status, says in cases:
            response = await http.post("/directives", content=content, headers={"content-type": content_type})
            assert (response.status_code, says in response.json()["error"]) == (status, True), response.text[:300]
        within_json = directive(unique, selector=not_chain(60, {"kind": "everyone"}))
        refused = await http.post("/directives", json=within_json)
        models = await http.post("/directives", json=directive(unique, models=["a"] * 100_000))
        countries = await http.post(
            "/directives", json=directive(unique, selector={"kind": "nationality", "any_of": ["CN"] * 100_000})
        )
    assert refused.status_code == 422 and "SELECTOR_DEPTH" in refused.json()["problems"][0]["message"]
    assert models.status_code == 422 and "MAX_MODELS" in models.json()["problems"][0]["message"]
    assert countries.status_code == 422 and "MAX_COUNTRIES" in countries.json()["problems"][0]["message"]
    assert await directive_records(bootstrap, unique) == []


async def test_the_same_request_twice_is_one_revision_and_one_event_with_or_without_a_key(
    served: tuple[IntakeService, str], bootstrap: str, unique: str
) -> None:
    keyed, plain = f"{unique}-k", f"{unique}-p"
    async with http_client(served[1]) as http:
        first = await http.post("/directives", json=directive(keyed), headers={"Idempotency-Key": f"{unique}-1"})
        retry = await http.post("/directives", json=directive(keyed), headers={"Idempotency-Key": f"{unique}-1"})
        once = await http.post("/directives", json=directive(plain))
        twice = await http.post("/directives", json=directive(plain))
    assert (first.status_code, retry.status_code) == (202, 202) and retry.json() == first.json()
    assert retry.headers["idempotent-replayed"] == "true"
    assert (once.status_code, twice.status_code) == (202, 200)
    assert twice.json() == {**once.json(), "unchanged": True}
    assert [e.revision for e in await directive_events(bootstrap, keyed)] == [1]
    assert [e.revision for e in await directive_events(bootstrap, plain)] == [1]


async def test_a_key_reused_for_another_request_is_422_even_after_a_restart(
    bootstrap: str, tmp_path: Path, unique: str
) -> None:
    key = {"Idempotency-Key": f"{unique}-key"}
    lift_key = {"Idempotency-Key": f"{unique}-lift"}
    async with running_intake(intake_settings(bootstrap, tmp_path, f"{unique}-1")) as first:
        async with serving_http(first) as base, http_client(base) as http:
            issued = await http.post("/directives", json=directive(unique), headers=key)
            lifted = await http.post(f"/directives/{unique}/lift", json={"reason": "done"}, headers=lift_key)
    async with running_intake(intake_settings(bootstrap, tmp_path, f"{unique}-2")) as second:
        async with serving_http(second) as base, http_client(base) as http:
            replayed = await http.post("/directives", json=directive(unique), headers=key)
            lift_replayed = await http.post(f"/directives/{unique}/lift", json={"reason": "done"}, headers=lift_key)
            conflict = await http.post("/directives", json=directive(unique, models=["mythos-5"]), headers=key)
    assert (replayed.status_code, replayed.json()) == (202, issued.json())
    assert (lift_replayed.status_code, lift_replayed.json()) == (202, lifted.json())
    assert conflict.status_code == 422 and f"{unique}-key" in conflict.json()["error"]
    assert [e.type for e in await directive_events(bootstrap, unique)] == ["DirectiveIssued", "DirectiveLifted"]
