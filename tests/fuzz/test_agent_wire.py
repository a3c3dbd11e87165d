"""Fuzzed raw HTTP/1.1 to the agent's access API as it serves (the hot path answered from the parser's callbacks):
every answer is a well-formed response below 500, or the connection is closed; the server keeps answering."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from services.agent.http import access_api, server_config
from shared.runtime.uvicorn_fence import embedded_server
from tests.unit.agent.builders import held_checker
from tests.unit.agent.test_http_wire import NOW, OPEN


class Served:
    """The access API served on loopback from a thread of its own, for the whole module."""

    def __init__(self) -> None:
        checker, state = held_checker(True)
        self.server = embedded_server(
            server_config(access_api(checker, state.describe, lambda: NOW, None, OPEN), "127.0.0.1", 0)
        )
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()), daemon=True)

    def __enter__(self) -> int:
        self.thread.start()
        while not self.server.started:
            assert self.thread.is_alive(), "server did not start"
            threading.Event().wait(0.01)
        return self.server.servers[0].sockets[0].getsockname()[1]

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    with Served() as bound:
        yield bound


def exchange(port: int, raw: bytes) -> bytes:
    """Send raw bytes, half-close, read what comes back until the server closes or goes quiet."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(raw)
        conn.shutdown(socket.SHUT_WR)
        received = b""
        try:
            while chunk := conn.recv(65536):
                received += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return received


def statuses(reply: bytes) -> list[int]:
    return [int(line.split()[1]) for line in reply.split(b"\r\n") if line.startswith(b"HTTP/1.1 ")]


def still_serving(port: int) -> None:
    reply = exchange(port, b"GET /v1/access?user=1042&model=fable-5 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert statuses(reply) == [200] and b'"deny"' in reply


targets = st.one_of(
    st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=120).map(lambda t: "/v1/access?" + t),
    st.sampled_from(["/v1/access", "/v1/access?user=1042&model=fable-5&user=2", "/v1/access?user=%ff", "*", "/"]),
    st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=60),
)
methods = st.sampled_from(["GET", "POST", "HEAD", "get", "OPTIONS", "GET GET"])
headers = st.lists(
    st.tuples(
        st.sampled_from(["Host", "X-API-Key", "Content-Length", "Transfer-Encoding", "Connection", "X"]),
        st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
    ),
    max_size=5,
)


@given(methods, targets, headers, st.binary(max_size=200))
@example("GET", "/v1/access?user=1042&model=fable-5", [("Content-Length", "-1")], b"")
@example("GET", "/v1/access?user=99999999999999999999&model=fable-5", [], b"")
@example("GET", "/v1/access?user=1042&model=" + "m" * 4000, [], b"")
def test_any_request_line_and_headers_are_answered_below_500_or_closed(
    port: int, method: str, target: str, fields: list[tuple[str, str]], body: bytes
) -> None:
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields) + "\r\n"
    reply = exchange(port, head.encode() + body)
    assert all(status < 500 for status in statuses(reply)), reply[:300]
    still_serving(port)


@given(st.binary(max_size=600))
@example(b"GET /v1/access?user=1&model=a HTTP/1.1\r\n\r\n" * 50)
def test_any_bytes_on_the_wire_are_answered_below_500_or_closed(port: int, raw: bytes) -> None:
    assert all(status < 500 for status in statuses(exchange(port, raw)))
    still_serving(port)
