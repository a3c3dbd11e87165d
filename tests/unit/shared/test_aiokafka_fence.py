"""The fence around aiokafka's internals (shared.runtime.aiokafka_fence), checked on aiokafka 0.14.0: a login derives
the SaltedPassword RFC 5802 defines, once per password and salt; a consumer's fetcher closes quietly while a fetch
waits out its back-off; fails loudly if an upgrade changes either."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import inspect
from importlib.metadata import version
from types import SimpleNamespace

import pytest
from aiokafka.conn import ScramAuthenticator
from aiokafka.consumer.fetcher import Fetcher

import shared.runtime.kafka  # noqa: F401  (installs the fence, as for every client)
from shared.runtime import aiokafka_fence


def test_the_installed_aiokafka_is_the_one_the_fence_was_checked_against() -> None:
    assert f"aiokafka=={version('aiokafka')}" == aiokafka_fence.CHECKED_AGAINST, (
        "aiokafka changed: re-check shared/runtime/aiokafka_fence.py, then update CHECKED_AGAINST"
    )
    called = inspect.getsource(ScramAuthenticator.process_server_first_message)
    assert "self.create_salted_password(salt, iterations)" in called and "self._salted_password" in called


def _login(password: str, salt: bytes, rounds: int) -> ScramAuthenticator:
    login = ScramAuthenticator(
        loop=None,  # not used by the SCRAM exchange itself
        sasl_plain_password=password,
        sasl_plain_username="impact",
        sasl_mechanism="SCRAM-SHA-512",
    )
    login.first_message()
    server_first = f"r={login._nonce}server,s={base64.b64encode(salt).decode()},i={rounds}"
    login.process_server_first_message(server_first)
    return login


def test_a_login_derives_the_rfc_salted_password_once_per_password_and_salt() -> None:
    aiokafka_fence.salted_password.cache_clear()
    first, again = _login("secret-1", b"salt-a", 4096), _login("secret-1", b"salt-a", 4096)
    other = _login("secret-2", b"salt-a", 4096)
    expected = hashlib.pbkdf2_hmac("sha512", b"secret-1", b"salt-a", 4096)
    assert first._salted_password == again._salted_password == expected != other._salted_password
    assert aiokafka_fence.salted_password.cache_info().misses == 2  # derived for secret-1 once, for secret-2 once
    assert first._client_proof != again._client_proof  # each login still proves itself on its own nonce


def test_the_fetcher_close_replaced_is_the_one_checked() -> None:
    """What _close_fetcher copies: aiokafka's own close awaits each pending fetch it cancelled, unguarded, and the
    fetch's back-off sleep after a failed request lies outside its CancelledError handler."""
    assert Fetcher.close is aiokafka_fence._close_fetcher  # installed by shared.runtime.kafka
    fetch = inspect.getsource(Fetcher._proc_fetch_request)
    backoff = fetch.index("await asyncio.sleep(self._retry_backoff)")
    assert fetch.index("except Errors.KafkaError") < backoff < fetch.index("except asyncio.CancelledError")


def _fetcher(pending: asyncio.Task) -> SimpleNamespace:
    async def idle() -> None:
        await asyncio.sleep(3600)

    return SimpleNamespace(
        _closed=False,
        _fetch_task=asyncio.ensure_future(idle()),
        _fetch_waiters=set(),
        _notify=lambda waiter: None,
        _pending_tasks={pending},
    )


async def _backing_off() -> bool:
    """As a fetch to an unreachable node: its request failed, it sleeps its back-off unguarded."""
    await asyncio.sleep(3600)
    return False


async def test_a_fetch_waiting_out_its_back_off_does_not_break_the_close() -> None:
    pending = asyncio.ensure_future(_backing_off())
    await asyncio.sleep(0)
    fetcher = _fetcher(pending)
    await aiokafka_fence._close_fetcher(fetcher)
    assert fetcher._closed and pending.cancelled() and fetcher._fetch_task.cancelled()


async def test_the_close_as_aiokafka_wrote_it_lets_the_cancellation_out() -> None:
    """Why the fence exists (once this fails, aiokafka fixed it and the fence can go): the same fetcher through
    aiokafka's own close raises CancelledError."""
    pending = asyncio.ensure_future(_backing_off())
    await asyncio.sleep(0)
    fetcher = _fetcher(pending)
    with pytest.raises(asyncio.CancelledError):
        await aiokafka_fence.AIOKAFKA_FETCHER_CLOSE(fetcher)


async def test_a_cancellation_of_the_caller_during_the_close_still_propagates() -> None:
    async def stubborn() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await asyncio.sleep(3600)  # takes its time to end after being cancelled

    pending = asyncio.ensure_future(stubborn())
    await asyncio.sleep(0)
    closing = asyncio.ensure_future(aiokafka_fence._close_fetcher(_fetcher(pending)))
    await asyncio.sleep(0.05)
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    pending.cancel()
