"""The webhook channel's transport (httpx over an asyncio-native httpcore backend) against real loopback servers:
TLS verified, one kept-alive connection reused, a connection the receiver closed replaced, large answers read
whole, and the fence around the httpx/httpcore versions it was checked against."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from pathlib import Path

import httpx
import pytest
import uvloop

from devtools.certificates import self_signed
from services.notifier import webhook_transport as fence
from services.notifier.webhook_transport import webhook_transport
from services.notifier.webhooks import new_secret, post, request_timeout, verify

SECRET = new_secret()


class Endpoint:
    """A minimal HTTP/1.1 receiver: verifies each webhook, counts connections, answers with `answer` bytes and
    closes the connection after each answer when `close_after` is set."""

    def __init__(self, answer_body: bytes = b"", close_after: bool = False) -> None:
        self.connections = 0
        self.received: list[str] = []
        self._body = answer_body
        self._close_after = close_after

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                lines = head.decode().split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in lines[1:] if h)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.received.append(verify([SECRET], headers, body))
                status = "200 OK" if self._body else "204 No Content"
                writer.write(f"HTTP/1.1 {status}\r\ncontent-length: {len(self._body)}\r\n\r\n".encode() + self._body)
                await writer.drain()
                if self._close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


@asynccontextmanager
async def serving(endpoint: Endpoint, tls: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    server = await asyncio.start_server(endpoint.serve, "127.0.0.1", 0, ssl=tls)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def _send(transport: httpx.AsyncHTTPTransport, url: str, webhook_id: str) -> str:
    outcome = await post(transport, httpx.URL(url), [SECRET], webhook_id, b'{"n": 1}', request_timeout(5))
    return f"{outcome.verdict} {outcome.reason}".strip()


@pytest.mark.parametrize("package", sorted(fence.CHECKED_AGAINST))
def test_the_installed_versions_are_the_ones_the_transport_was_checked_against(package: str) -> None:
    assert version(package) == fence.CHECKED_AGAINST[package], (
        f"{package} is not the version webhook_transport.py reaches into: check AsyncHTTPTransport._pool and "
        "httpcore's AsyncNetworkBackend again, then update CHECKED_AGAINST"
    )


async def test_one_kept_alive_connection_carries_every_request_of_a_worker() -> None:
    await _kept_alive()


async def _kept_alive() -> None:
    endpoint = Endpoint()
    async with serving(endpoint) as port:
        transport = webhook_transport(httpx.create_ssl_context())
        answers = [await _send(transport, f"http://127.0.0.1:{port}/hook", f"n-{i}") for i in range(5)]
        await transport.aclose()
    assert answers == ["delivered"] * 5
    assert endpoint.received == [f"n-{i}" for i in range(5)] and endpoint.connections == 1


async def test_a_connection_the_receiver_closed_is_replaced_by_a_new_one() -> None:
    await _replaced()


async def _replaced() -> None:
    endpoint = Endpoint(close_after=True)
    async with serving(endpoint) as port:
        transport = webhook_transport(httpx.create_ssl_context())
        answers = []
        for i in range(3):
            answers.append(await _send(transport, f"http://127.0.0.1:{port}/hook", f"n-{i}"))
            await asyncio.sleep(0.05)  # the receiver's close reaches the client while the connection is idle
        await transport.aclose()
    assert answers == ["delivered"] * 3 and endpoint.connections == 3


async def test_a_connection_idle_past_its_keep_alive_expiry_is_replaced() -> None:
    endpoint = Endpoint()
    async with serving(endpoint) as port:
        transport = webhook_transport(httpx.create_ssl_context(), keepalive_expiry=0.05)
        answers = [await _send(transport, f"http://127.0.0.1:{port}/hook", "n-0")]
        await asyncio.sleep(0.2)
        answers.append(await _send(transport, f"http://127.0.0.1:{port}/hook", "n-1"))
        await transport.aclose()
    assert answers == ["delivered"] * 2 and endpoint.connections == 2


async def test_an_answer_larger_than_the_read_buffer_is_read_whole() -> None:
    await _large_answer()


async def _large_answer() -> None:
    endpoint = Endpoint(answer_body=b"x" * (3 * fence.READ_LIMIT + 17))
    async with serving(endpoint) as port:
        transport = webhook_transport(httpx.create_ssl_context())
        answers = [await _send(transport, f"http://127.0.0.1:{port}/hook", f"n-{i}") for i in range(2)]
        await transport.aclose()
    assert answers == ["delivered"] * 2 and endpoint.connections == 1


async def test_https_is_verified_against_the_trusted_certificates(tmp_path: Path) -> None:
    await _https(tmp_path)


def test_the_same_holds_on_uvloop_the_services_event_loop(tmp_path: Path) -> None:
    async def every_scenario() -> None:
        await _kept_alive()
        await _replaced()
        await _large_answer()
        await _https(tmp_path)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(every_scenario())


async def _https(tmp_path: Path) -> None:
    cert_file, key_file = self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert_file, key_file)
    endpoint = Endpoint()
    async with serving(endpoint, server_tls) as port:
        url = f"https://127.0.0.1:{port}/hook"
        trusting = webhook_transport(ssl.create_default_context(cafile=cert_file))
        untrusting = webhook_transport(httpx.create_ssl_context())
        trusted = [await _send(trusting, url, f"tls-{i}") for i in range(2)]
        refused = await _send(untrusting, url, "untrusted")
        await trusting.aclose()
        await untrusting.aclose()
    assert trusted == ["delivered"] * 2
    assert refused == "transient connection failed: ConnectError"
    assert endpoint.received == ["tls-0", "tls-1"]
