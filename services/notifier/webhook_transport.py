"""The httpx transport webhooks are POSTed through: httpx's own, over one kept-alive httpcore connection per worker
on an asyncio-native network backend (under asyncio httpcore runs on anyio, whose streams, cancel scopes, locks and
events cost more CPU per request than the rest of it). Checked against httpx 0.28.1 and httpcore 1.0.9."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx
from httpcore._utils import is_socket_readable

CHECKED_AGAINST = {"httpx": "0.28.1", "httpcore": "1.0.9"}  # AsyncHTTPTransport keeps its pool in `_pool`
READ_LIMIT = 256 * 1024  # bytes buffered before the socket is no longer read until httpcore catches up
WRITE_HOLD = 64 * 1024  # bytes of a request held back at most before they are written


class _Connection(asyncio.Protocol):
    """What arrived on a connection and whether it ended, for the stream to read at its own pace."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.ended = False
        self.error: BaseException | None = None
        self.transport: asyncio.Transport | None = None
        self.can_write = True
        self._waiter: asyncio.Future[bool] | None = None
        self._reading_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > READ_LIMIT and self.transport is not None and not self._reading_paused:
            self.transport.pause_reading()
            self._reading_paused = True
        self._wake()

    def eof_received(self) -> None:
        self.ended = True
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended, self.error = True, exc
        self.can_write = True
        self._wake()

    def pause_writing(self) -> None:
        self.can_write = False

    def resume_writing(self) -> None:
        self.can_write = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(True)

    async def wait(self, timeout: float | None) -> bool:
        """Until something happens on the connection (True), or `timeout` seconds pass (False)."""
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        timer = loop.call_later(timeout, _expire, waiter) if timeout is not None else None
        try:
            return await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def take(self, max_bytes: int) -> bytes:
        data = bytes(self.buffer[:max_bytes])
        del self.buffer[:max_bytes]
        if self._reading_paused and len(self.buffer) <= READ_LIMIT // 2 and self.transport is not None:
            self.transport.resume_reading()
            self._reading_paused = False
        return data


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


class AsyncioStream(httpcore.AsyncNetworkStream):
    """One TCP (or TLS) connection on asyncio's transport and protocol; errors as httpcore's exceptions.

    Writes are held until the next read (or until WRITE_HOLD bytes): httpcore writes a request's head and body
    separately, then reads the answer, so a request leaves in one send instead of two."""

    def __init__(self, transport: asyncio.Transport, connection: _Connection) -> None:
        self._transport = transport
        self._connection = connection
        self._held = bytearray()

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        connection = self._connection
        if self._held:
            await self._flush(timeout)
        while not connection.buffer and not connection.ended:
            if not await connection.wait(timeout):
                raise httpcore.ReadTimeout(f"no answer within {timeout} s")
        if connection.buffer:
            return connection.take(max_bytes)
        if connection.error is not None:
            raise httpcore.ReadError(str(connection.error) or type(connection.error).__name__)
        return b""  # the peer closed the connection: httpcore says what that means for the request

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        if self._transport.is_closing() or self._connection.ended:
            raise httpcore.WriteError("the connection is closed")
        self._held += buffer
        if len(self._held) >= WRITE_HOLD:
            await self._flush(timeout)

    async def _flush(self, timeout: float | None) -> None:
        connection = self._connection
        if self._transport.is_closing():
            raise httpcore.WriteError("the connection is closed")
        self._transport.write(self._held)
        self._held = bytearray()
        while not connection.can_write:
            if not await connection.wait(timeout):
                raise httpcore.WriteTimeout(f"could not write within {timeout} s")
            if connection.ended and connection.error is not None:
                raise httpcore.WriteError(str(connection.error))

    async def aclose(self) -> None:
        self._transport.close()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                secured = await loop.start_tls(
                    self._transport, self._connection, ssl_context, server_hostname=server_hostname
                )
        except TimeoutError as exc:
            self._transport.close()
            raise httpcore.ConnectTimeout(f"TLS handshake not done within {timeout} s") from exc
        except (OSError, ssl.SSLError) as exc:
            self._transport.close()
            raise httpcore.ConnectError(str(exc)) from exc
        if secured is None:
            raise httpcore.ConnectError("the connection closed during the TLS handshake")
        self._connection.transport = secured  # type: ignore[assignment]
        return AsyncioStream(secured, self._connection)  # type: ignore[arg-type]

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":  # an idle connection with something to read was closed (or broken) by the peer
            if self._connection.buffer or self._connection.ended:
                return True
            return is_socket_readable(self._transport.get_extra_info("socket"))
        names = {"ssl_object": "ssl_object", "client_addr": "sockname", "server_addr": "peername", "socket": "socket"}
        return self._transport.get_extra_info(names[info]) if info in names else None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """Connections on the running asyncio loop (uvloop in the services)."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        local = (local_address, 0) if local_address else None
        try:
            async with asyncio.timeout(timeout):
                transport, connection = await loop.create_connection(_Connection, host, port, local_addr=local)
        except TimeoutError as exc:  # before OSError: TimeoutError is one
            raise httpcore.ConnectTimeout(f"not connected within {timeout} s") from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        sock = transport.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return AsyncioStream(transport, connection)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport, connection = await loop.create_unix_connection(_Connection, path)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"not connected within {timeout} s") from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        return AsyncioStream(transport, connection)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class KeptAlive:
    """httpcore's pool reduced to what one worker needs: one kept-alive connection for requests that come one after
    the other, replaced when it closed, broke or the peer closed it while idle (what the pool's checks find too);
    without the pool's queue, events and locks, which cost more CPU per request than the request itself."""

    def __init__(self, tls: ssl.SSLContext, keepalive_expiry: float | None) -> None:
        self._tls = tls
        self._keepalive_expiry = keepalive_expiry
        self._backend = AsyncioBackend()
        self._connection: httpcore.AsyncHTTPConnection | None = None

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        try:
            return await (await self._usable(request)).handle_async_request(request)
        except httpcore.ConnectionNotAvailable:  # it closed between the check and the request: once more, anew
            await self.aclose()
            return await (await self._usable(request)).handle_async_request(request)

    async def _usable(self, request: httpcore.Request) -> httpcore.AsyncHTTPConnection:
        held = self._connection
        if held is not None and (
            held.is_closed() or held.has_expired() or not held.can_handle_request(request.url.origin)
        ):
            await self.aclose()  # closed, broken, idle too long or closed by the peer
            held = None
        if held is None:
            held = self._connection = httpcore.AsyncHTTPConnection(
                request.url.origin,
                ssl_context=self._tls,
                keepalive_expiry=self._keepalive_expiry,
                network_backend=self._backend,
            )
        return held

    async def aclose(self) -> None:
        held, self._connection = self._connection, None
        if held is not None:
            await held.aclose()

    async def __aenter__(self) -> KeptAlive:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()


def webhook_transport(tls: ssl.SSLContext, keepalive_expiry: float | None = 5.0) -> httpx.AsyncHTTPTransport:
    """httpx's transport (HTTP/1.1) over one kept-alive connection on AsyncioBackend: for one worker's requests."""
    transport = httpx.AsyncHTTPTransport(verify=tls)
    transport._pool = KeptAlive(tls, keepalive_expiry)  # type: ignore[assignment]  # noqa: SLF001 (the fence)
    return transport
