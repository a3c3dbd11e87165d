"""The access API on the wire (loopback): the hot path answered by the protocol itself stays correct HTTP/1.1."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from services.agent.access import AccessChecker
from services.agent.http import AccessProtocol, access_api, server_config
from shared.runtime.auth import AuthSettings, Guard
from shared.runtime.uvicorn_fence import embedded_server
from tests.unit.agent.builders import held_checker

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
OPEN = Guard(AuthSettings(mode="off"), "agent")  # who may call: tests/unit/agent/test_http_auth.py
DENIED = {"user": 1042, "model": "fable-5", "decision": "deny", "directives": ["D1"]}


class Wire:
    """One raw keep-alive connection: write bytes, read whole responses."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    def send(self, *requests: str) -> None:
        self.writer.write("".join(requests).encode())

    async def response(self) -> tuple[int, dict[bytes, bytes], bytes]:
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 10)
        status_line, *lines = head[:-4].split(b"\r\n")
        headers = {name.strip().lower(): value.strip() for name, value in (line.split(b":", 1) for line in lines)}
        body = await asyncio.wait_for(self.reader.readexactly(int(headers.get(b"content-length", b"0"))), 10)
        return int(status_line.split()[1]), headers, body

    async def closed(self) -> bool:
        return await asyncio.wait_for(self.reader.read(), 10) == b""


def get(target: str, extra: str = "") -> str:
    return f"GET {target} HTTP/1.1\r\nHost: agent\r\n{extra}\r\n"


@contextlib.asynccontextmanager
async def serving(ready: bool) -> AsyncIterator[int]:
    """The access API over D1 = {1042 on fable-5}, served as the agent serves it; yields its port."""
    checker, state = held_checker(ready)
    server = embedded_server(
        server_config(access_api(checker, state.describe, lambda: NOW, None, OPEN), "127.0.0.1", 0)
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "server did not start"
        await asyncio.sleep(0.01)
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def served() -> AsyncIterator[int]:
    async with serving(ready=True) as port:
        yield port


@pytest.fixture
async def wire(served: int) -> AsyncIterator[Wire]:
    connection = Wire(*await asyncio.open_connection("127.0.0.1", served))
    yield connection
    connection.writer.close()


def test_the_agent_serves_with_the_access_protocol() -> None:
    config = server_config(access_api(AccessChecker(), dict, lambda: NOW, None, OPEN), "127.0.0.1", 0)
    config.load()
    assert config.http_protocol_class is AccessProtocol


async def test_checks_on_one_keep_alive_connection_get_the_api_answers(wire: Wire) -> None:
    for _ in range(3):
        wire.send(get("/v1/access?user=1042&model=fable-5"))
        status, headers, body = await wire.response()
        assert (status, headers[b"content-type"], json.loads(body)) == (200, b"application/json", DENIED)
        assert b"connection" not in headers and b"date" in headers
        wire.send(get("/v1/access?model=fable-5&user=1043"))
        status, _, body = await wire.response()
        assert (status, json.loads(body)["decision"]) == (200, "allow")


async def test_pipelined_requests_are_answered_in_order_whichever_path_answers(wire: Wire) -> None:
    wire.send(
        get("/v1/access?user=1042&model=fable-5"),
        get("/v1/state"),
        get("/v1/access?user=1&model=fable-5"),
        get("/v1/access?user=x&model=fable-5"),
        get("/v1/access?user=1042&model=fable-5"),
        get("/healthz"),
    )
    answers = [await wire.response() for _ in range(6)]
    assert [status for status, _, _ in answers] == [200, 200, 200, 422, 200, 200]
    bodies = [json.loads(body) for _, _, body in answers]
    assert bodies[0] == DENIED and bodies[4] == DENIED and bodies[5] == {"status": "ok"}
    assert "D1" in bodies[1]["directives"] and bodies[2]["decision"] == "allow"
    assert [e["loc"][-1] for e in bodies[3]["detail"]] == ["user"]


async def test_not_ready_is_503_on_the_hot_path() -> None:
    async with serving(ready=False) as port:
        connection = Wire(*await asyncio.open_connection("127.0.0.1", port))
        for _ in range(2):
            connection.send(get("/v1/access?user=1042&model=fable-5"))
            status, headers, body = await connection.response()
            assert status == 503 and b"connection" not in headers and "not ready" in json.loads(body)["detail"]
        connection.writer.close()


async def test_malformed_checks_are_named_by_fastapi(wire: Wire) -> None:
    for target, name in [
        ("/v1/access?user=4294967296&model=fable-5", "user"),
        ("/v1/access?user=1&model=Fable%205", "model"),
        ("/v1/access?user=1", "model"),
        ("/v1/access?user=1&model=" + "f" * 8_000, "model"),
    ]:
        wire.send(get(target))
        status, _, body = await wire.response()
        assert status == 422, target[:60]
        assert [e["loc"][-1] for e in json.loads(body)["detail"]] == [name], target[:60]


async def test_a_malformed_request_line_gets_400_and_the_connection_closes(wire: Wire) -> None:
    wire.send("GET /v1/access?user=1&model=fable-5 HTTP/9.9\r\n\r\n")
    status, headers, _ = await wire.response()
    assert status == 400 and headers[b"connection"] == b"close"
    assert await wire.closed()


async def test_an_oversized_request_gets_400_and_the_connection_closes(wire: Wire) -> None:
    wire.send(get("/v1/access?user=1042&model=" + "f" * 100_000))
    status, headers, _ = await wire.response()
    assert status == 400 and headers[b"connection"] == b"close"
    assert await wire.closed()


async def test_http_1_0_and_connection_close_are_answered_then_closed(served: int) -> None:
    for request in [
        "GET /v1/access?user=1042&model=fable-5 HTTP/1.0\r\n\r\n",
        get("/v1/access?user=1042&model=fable-5", "Connection: close\r\n"),
    ]:
        connection = Wire(*await asyncio.open_connection("127.0.0.1", served))
        connection.send(request)
        status, headers, body = await connection.response()
        assert (status, headers[b"connection"], json.loads(body)) == (200, b"close", DENIED)
        assert await connection.closed()
        connection.writer.close()


async def test_a_client_leaving_mid_request_does_not_disturb_the_others(served: int, wire: Wire) -> None:
    for partial in ["GET /v1/access?user=1042&mo", get("/v1/access?user=1042&model=fable-5") * 50]:
        _, leaving = await asyncio.open_connection("127.0.0.1", served)
        leaving.write(partial.encode())
        leaving.transport.abort()
    wire.send(get("/v1/access?user=1042&model=fable-5"))
    status, _, body = await wire.response()
    assert (status, json.loads(body)) == (200, DENIED)


async def test_a_get_with_a_body_is_answered_and_the_body_skipped(wire: Wire) -> None:
    wire.send(
        get("/v1/access?user=1042&model=fable-5", "Content-Length: 5\r\n") + "hello",
        get("/v1/access?user=1043&model=fable-5"),
    )
    first, second = await wire.response(), await wire.response()
    assert json.loads(first[2]) == DENIED and json.loads(second[2])["decision"] == "allow"


async def test_a_failing_check_gets_500_and_the_connection_closes(wire: Wire, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("broken")

    monkeypatch.setattr(AccessChecker, "check", broken)
    wire.send(get("/v1/access?user=1042&model=fable-5"))
    status, headers, body = await wire.response()
    assert (status, headers[b"connection"], body) == (500, b"close", b"Internal Server Error")
    assert await wire.closed()


async def test_requests_after_a_connection_close_are_not_answered(wire: Wire) -> None:
    wire.send(
        get("/v1/access?user=1042&model=fable-5", "Connection: close\r\n"), get("/v1/access?user=1043&model=fable-5")
    )
    status, headers, body = await wire.response()
    assert (status, headers[b"connection"], json.loads(body)) == (200, b"close", DENIED)
    assert await wire.closed()
