"""Where Countermand reaches into aiokafka's internals (its SCRAM client, its fetcher's close): checked against
aiokafka==0.14.0.

aiokafka derives the SCRAM SaltedPassword (PBKDF2: 4096 rounds of HMAC-SHA-512 by default, about 4 ms of CPU) anew
for every connection, and a service opens a dozen at start (each client connects at least twice). RFC 5802 (section
3) lets a client keep it, as the server advertises the same salt again: it is kept per (hash, password, salt, rounds).
A consumer stopped while one of its fetches to an unreachable broker waits out its retry back-off raised
CancelledError out of `stop()` (the back-off sleep is outside the fetch's cancellation handler, and the fetcher's
close awaits the task it cancelled), skipping the rest of the stop: the fetcher's close lets that task end quietly.
tests/unit/shared/test_aiokafka_fence.py fails loudly if an upgrade changes what this replaces.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
from typing import Any

from aiokafka.conn import ScramAuthenticator
from aiokafka.consumer.fetcher import Fetcher

CHECKED_AGAINST = "aiokafka==0.14.0"


@functools.lru_cache(maxsize=16)
def salted_password(hash_name: str, password: bytes, salt: bytes, rounds: int) -> bytes:
    """SCRAM's SaltedPassword: Hi(password, salt, rounds), PBKDF2 with the mechanism's HMAC."""
    return hashlib.pbkdf2_hmac(hash_name, password, salt, rounds)


def _create_salted_password(self: Any, salt: bytes, iterations: int) -> None:
    self._salted_password = salted_password(self._hashname, self._sasl_plain_password, salt, iterations)


def keep_scram_salted_password() -> None:
    """Make every aiokafka SCRAM login of this process derive each SaltedPassword once."""
    ScramAuthenticator.create_salted_password = _create_salted_password


AIOKAFKA_FETCHER_CLOSE = Fetcher.close  # kept: a test shows it still lets the cancellation out


async def _close_fetcher(self: Any) -> None:
    """Fetcher.close of aiokafka 0.14.0, except that a pending fetch it cancels may end in CancelledError without
    that escaping; a cancellation of the caller itself still does."""
    self._closed = True
    self._fetch_task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await self._fetch_task
    for waiter in self._fetch_waiters:
        self._notify(waiter)
    for task in self._pending_tasks:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise


def close_fetches_quietly() -> None:
    """Make every aiokafka consumer of this process stop whole even while a broker is unreachable."""
    Fetcher.close = _close_fetcher
