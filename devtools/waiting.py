"""Waiting for something to become true: the one `eventually` (async) and `eventually_blocking` (threads).

A check returns something truthy when done; that value is returned. An async check is awaited.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any

TIMEOUT_S = 60.0
INTERVAL_S = 0.1


async def eventually(
    check: Callable[[], Any], what: str = "condition", timeout: float = TIMEOUT_S, interval: float = INTERVAL_S
) -> Any:
    """Poll check() (sync or async) until it returns something truthy and return it; AssertionError naming
    `what` after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(interval)


def eventually_blocking(
    check: Callable[[], Any], what: str = "condition", timeout: float = TIMEOUT_S, interval: float = INTERVAL_S
) -> Any:
    """eventually() for code without an event loop: sleeps the thread between checks."""
    deadline = time.monotonic() + timeout
    while True:
        if value := check():
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
