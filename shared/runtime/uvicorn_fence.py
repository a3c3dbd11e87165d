"""Where Countermand relies on uvicorn's internals, in one place: checked against uvicorn==0.54.0.

- The agent answers its hot access check inside uvicorn's httptools protocol (services/agent/http.py):
  it subclasses HttpToolsProtocol, overrides its parser callbacks and reads the attributes listed in
  PROTOCOL_ATTRIBUTES, and writes STATUS_LINE itself.
- A service that owns its process's signals runs uvicorn without uvicorn's capture_signals().
tests/unit/shared/test_uvicorn_fence.py fails loudly if an upgrade moves or renames any of it.
"""

from __future__ import annotations

import contextlib

import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

CHECKED_AGAINST = "0.54.0"
# Parser callbacks the agent's protocol overrides and calls through to.
PROTOCOL_CALLBACKS = ("on_message_begin", "on_headers_complete", "on_body", "on_message_complete", "resume_writing")
# What it reads or calls on the protocol besides: set in __init__ or connection_made.
PROTOCOL_ATTRIBUTES = (
    "parser",
    "url",
    "headers",
    "pipeline",
    "cycle",
    "transport",
    "flow",
    "server_state",
    "loop",
    "logger",
    "timeout_keep_alive",
    "timeout_keep_alive_task",
    "timeout_keep_alive_handler",
    "_unset_keepalive_if_required",
)

__all__ = ["STATUS_LINE", "HttpToolsProtocol", "embedded_server", "ignore_signals"]


def ignore_signals(server: uvicorn.Server) -> uvicorn.Server:
    """Make uvicorn leave the process's signals alone (its serve() captures them): the service handles them."""
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
    return server


def embedded_server(config: uvicorn.Config) -> uvicorn.Server:
    """A uvicorn server that leaves the process's signals alone."""
    return ignore_signals(uvicorn.Server(config))
