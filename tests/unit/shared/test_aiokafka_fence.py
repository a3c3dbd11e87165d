"""The fence around aiokafka's SCRAM client (shared.runtime.aiokafka_fence), checked on aiokafka 0.14.0: a login
derives the SaltedPassword RFC 5802 defines, once per password and salt; fails loudly if an upgrade changes it."""

from __future__ import annotations

import base64
import hashlib
import inspect
from importlib.metadata import version

from aiokafka.conn import ScramAuthenticator

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
