"""The services' event loop closes a TLS connection without waiting out a peer that never answers its close_notify
(a Kafka broker may not: each consumer stop then took the default 30 s)."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.certificates import self_signed
from shared.runtime import event_loop
from shared.runtime.event_loop import TLS_CLOSE_WAIT_S, event_loop_factory

DEFAULT_CLOSE_WAIT_S = 30.0  # asyncio's and uvloop's default ssl_shutdown_timeout


@pytest.fixture
def silent_tls_peer(tmp_path: Path) -> Iterator[int]:
    """A TLS server on loopback that completes the handshake, then never reads again: it never answers a close."""
    cert, key = self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def serve() -> None:
        connection, _ = listener.accept()
        with context.wrap_socket(connection, server_side=True):
            done.wait(60)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    done.set()
    thread.join(10)
    listener.close()


async def _close_wait_s(port: int) -> float:
    """Seconds from closing a TLS client connection to the peer until the connection is gone."""
    client = ssl.create_default_context()
    client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
    lost = asyncio.get_running_loop().create_future()

    class Protocol(asyncio.Protocol):
        def connection_lost(self, exc: Exception | None) -> None:
            lost.set_result(None)

    transport, _ = await asyncio.get_running_loop().create_connection(Protocol, "127.0.0.1", port, ssl=client)
    started = time.monotonic()
    transport.close()
    await asyncio.wait_for(lost, DEFAULT_CLOSE_WAIT_S + 15)
    return time.monotonic() - started


def test_a_tls_connection_to_a_peer_that_never_answers_the_close_is_gone_without_the_default_wait(
    silent_tls_peer: int,
) -> None:
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        waited = runner.run(_close_wait_s(silent_tls_peer))
    # The closing wait is the fence's, not the loop's 30 s default (a bound, not a benchmark: either is far apart).
    assert TLS_CLOSE_WAIT_S <= waited + 0.05
    assert waited < DEFAULT_CLOSE_WAIT_S / 2


def test_the_services_run_on_uvloop_with_the_version_the_fence_was_checked_against() -> None:
    import uvloop

    assert event_loop.CHECKED_AGAINST == f"uvloop=={uvloop.__version__}", "re-check the TLS close on this uvloop"
    assert issubclass(event_loop_factory(), uvloop.Loop)


def test_a_plain_connection_takes_no_tls_close_timeout() -> None:
    """asyncio and uvloop refuse ssl_shutdown_timeout without TLS: the fence passes none there."""

    async def connect(port: int) -> None:
        transport, _ = await asyncio.get_running_loop().create_connection(asyncio.Protocol, "127.0.0.1", port)
        transport.close()

    listener = socket.create_server(("127.0.0.1", 0))
    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(connect(listener.getsockname()[1]))
    finally:
        listener.close()
