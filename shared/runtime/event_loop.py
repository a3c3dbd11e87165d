"""The services' event loop: uvloop when installed, whose TLS connections close without waiting out a peer that
never answers the close; checked against uvloop==0.23.0 and CPython 3.11's asyncio.

Closing a TLS connection sends close_notify and, by default, waits up to 30 s for the peer's. A Kafka broker does
not always answer, and aiokafka's client waits for every connection it closes (AIOKafkaClient.close), so a
consumer's stop -- every read of a topic to its end at start-up -- could take 30 s. Every Kafka request has had its
answer by then: nothing is lost by closing sooner. tests/unit/shared/test_event_loop.py fails loudly if an upgrade
breaks this.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

CHECKED_AGAINST = "uvloop==0.23.0"
TLS_CLOSE_WAIT_S = 0.02  # what the peer answers after this is of no use to a client that chose to close (it closes
# once every request has its answer): the wait is on the start path of every read to the end (recovery)


def _closing_promptly(base: type[asyncio.AbstractEventLoop]) -> type[asyncio.AbstractEventLoop]:
    class Loop(base):  # type: ignore[valid-type, misc]
        async def create_connection(  # type: ignore[override]
            self, *args: Any, ssl: Any = None, ssl_shutdown_timeout: float | None = None, **kwargs: Any
        ) -> Any:
            if ssl and ssl_shutdown_timeout is None:
                ssl_shutdown_timeout = TLS_CLOSE_WAIT_S
            return await super().create_connection(*args, ssl=ssl, ssl_shutdown_timeout=ssl_shutdown_timeout, **kwargs)

    Loop.__name__ = Loop.__qualname__ = f"PromptTlsClose{base.__name__}"
    return Loop


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's event loop when it is installed (less overhead and jitter per I/O event than asyncio's own,
    which is what the agent's access-check latency is made of), else asyncio's; either closes TLS promptly."""
    try:
        import uvloop
    except ImportError:
        return _closing_promptly(asyncio.SelectorEventLoop)
    return _closing_promptly(uvloop.Loop)
