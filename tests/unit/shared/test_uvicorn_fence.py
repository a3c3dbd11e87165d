"""The fence around uvicorn's internals (shared.runtime.uvicorn_fence), checked on uvicorn 0.54.0.

If an upgrade moves what the agent's access fast path or the embedded servers rely on, these fail and
say which assumption broke: read the new uvicorn, adapt the fence, then bump CHECKED_AGAINST.
"""

from __future__ import annotations

import asyncio
import inspect
from importlib.metadata import version
from typing import Any

import uvicorn
from uvicorn.server import ServerState

from shared.runtime import uvicorn_fence
from shared.runtime.uvicorn_fence import (
    PROTOCOL_ATTRIBUTES,
    PROTOCOL_CALLBACKS,
    STATUS_LINE,
    HttpToolsProtocol,
    embedded_server,
)


class _Transport(asyncio.Transport):
    """Just enough of a transport for connection_made: no socket, no TLS."""

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass


async def _app(scope: Any, receive: Any, send: Any) -> None:  # never called
    raise AssertionError


def test_the_installed_uvicorn_is_the_one_the_fence_was_checked_against() -> None:
    assert version("uvicorn") == uvicorn_fence.CHECKED_AGAINST, (
        "uvicorn changed: re-check shared/runtime/uvicorn_fence.py and services/agent/http.py, then update "
        "CHECKED_AGAINST"
    )


async def test_the_httptools_protocol_still_has_every_callback_and_attribute_the_agent_uses() -> None:
    protocol = HttpToolsProtocol(uvicorn.Config(_app, lifespan="off"), server_state=ServerState(), app_state={})
    protocol.connection_made(_Transport())
    protocol.on_message_begin()
    for name in PROTOCOL_CALLBACKS:
        assert callable(getattr(HttpToolsProtocol, name, None)), f"HttpToolsProtocol.{name} is gone"
    assert list(inspect.signature(HttpToolsProtocol.on_body).parameters) == ["self", "body"]
    missing = [name for name in PROTOCOL_ATTRIBUTES if not hasattr(protocol, name)]
    assert not missing, f"HttpToolsProtocol no longer has {missing}"
    assert protocol.url == b"" and not protocol.pipeline and protocol.cycle is None
    assert hasattr(protocol.flow, "write_paused") and callable(protocol.flow.pause_reading)
    assert isinstance(protocol.server_state.default_headers, list) and protocol.server_state.total_requests == 0
    protocol.connection_lost(None)


def test_status_lines_are_complete_http_1_1_lines() -> None:
    assert STATUS_LINE[200] == b"HTTP/1.1 200 OK\r\n" and STATUS_LINE[503].startswith(b"HTTP/1.1 503 ")


def test_an_embedded_server_does_not_capture_the_process_signals() -> None:
    assert "capture_signals" in inspect.getsource(uvicorn.Server.serve), "uvicorn no longer captures signals there"
    server = embedded_server(uvicorn.Config(_app))
    with server.capture_signals():  # a plain context: installs no handler, re-raises no signal on exit
        pass
