"""Where Countermand reaches into aiokafka's SCRAM client: checked against aiokafka==0.14.0.

aiokafka derives the SCRAM SaltedPassword (PBKDF2: 4096 rounds of HMAC-SHA-512 by default, about 4 ms of CPU) anew
for every connection, and a service opens a dozen at start (each client connects at least twice). RFC 5802 (section
3) lets a client keep it, as the server advertises the same salt again: it is kept per (hash, password, salt, rounds).
tests/unit/shared/test_aiokafka_fence.py fails loudly if an upgrade changes what this replaces.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

from aiokafka.conn import ScramAuthenticator

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
