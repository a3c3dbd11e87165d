"""Signatures on records: what a verifier accepts, and every forgery refused with its reason."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from shared.runtime.signing import (
    KEY_ID_HEADER,
    SIGNATURE_HEADER,
    KeySet,
    SignatureRefused,
    Signer,
    signed_bytes,
)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


TOPIC = "serving.commands.v1"
KEY = b"us-east"
VALUE = b'{"type":"LiftCommand","directive_id":"d-1","revision":1}'
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer.generate("enforcement-2026-12")


@pytest.fixture(scope="module")
def keys(signer: Signer) -> KeySet:
    return KeySet.from_json(KeySet([signer.public()]).to_json())


def refusal(keys: KeySet, headers: dict, topic: str = TOPIC, key: bytes = KEY, value: bytes = VALUE) -> str:
    with pytest.raises(SignatureRefused) as caught:
        keys.verify(topic, key, value, headers, NOW)
    return caught.value.reason


def test_a_signed_record_verifies_and_names_its_key(signer: Signer, keys: KeySet) -> None:
    headers = signer.headers(TOPIC, KEY, VALUE)
    assert keys.verify(TOPIC, KEY, VALUE, {k: v.encode() for k, v in headers.items()}, NOW) == signer.key_id


def test_an_unsigned_record_is_refused(keys: KeySet) -> None:
    assert refusal(keys, {}) == "unsigned"


def test_one_byte_changed_in_the_value_is_refused(signer: Signer, keys: KeySet) -> None:
    headers = signer.headers(TOPIC, KEY, VALUE)
    altered = VALUE.replace(b'"revision":1', b'"revision":2')
    assert refusal(keys, headers, value=altered) == "bad signature"


def test_a_signed_record_moved_to_another_key_or_topic_is_refused(signer: Signer, keys: KeySet) -> None:
    headers = signer.headers(TOPIC, KEY, VALUE)
    assert refusal(keys, headers, key=b"eu-west") == "bad signature"
    assert refusal(keys, headers, topic="compliance.directives.v1") == "bad signature"


def test_a_key_the_verifier_does_not_know_is_refused(keys: KeySet) -> None:
    stranger = Signer.generate("attacker")
    assert refusal(keys, stranger.headers(TOPIC, KEY, VALUE)) == "unknown signing key"


def test_a_swapped_key_id_is_refused(signer: Signer) -> None:
    other = Signer.generate("other")
    keys = KeySet([signer.public(), other.public()])
    headers = other.headers(TOPIC, KEY, VALUE) | {KEY_ID_HEADER: signer.key_id}
    assert refusal(keys, headers) == "bad signature"


def test_a_retired_key_is_accepted_until_its_retire_time_only(signer: Signer) -> None:
    keys = KeySet([signer.public(retire_at=NOW + timedelta(hours=1))])
    headers = signer.headers(TOPIC, KEY, VALUE)
    assert keys.verify(TOPIC, KEY, VALUE, headers, NOW) == signer.key_id
    with pytest.raises(SignatureRefused, match="retired signing key"):
        keys.verify(TOPIC, KEY, VALUE, headers, NOW + timedelta(hours=1))


@pytest.mark.parametrize("signature", ["", "!!not base64!!", "AAAA", "A" * 200])
def test_a_malformed_or_truncated_signature_is_refused(signer: Signer, keys: KeySet, signature: str) -> None:
    reason = refusal(keys, {KEY_ID_HEADER: signer.key_id, SIGNATURE_HEADER: signature})
    assert reason in ("malformed signature", "bad signature")


def test_the_signed_bytes_are_unambiguous() -> None:
    assert signed_bytes("ab", b"c", b"") != signed_bytes("a", b"bc", b"")
    assert signed_bytes("t", None, b"v") == signed_bytes("t", b"", b"v")


def test_the_signed_bytes_stay_small_whatever_the_value_and_bind_every_byte_of_it() -> None:
    big = bytes(5_000_000)
    assert len(signed_bytes(TOPIC, KEY, big)) == len(signed_bytes(TOPIC, KEY, b""))
    assert signed_bytes(TOPIC, KEY, big) != signed_bytes(TOPIC, KEY, big[:-1] + b"\x01")


def test_a_record_signed_over_its_whole_value_before_hashing_first_still_verifies(signer: Signer, keys: KeySet) -> None:
    """Records signed the earlier way (value bytes signed directly) stay verifiable in ledgers and topics."""
    framed = b"countermand-record-v1\n" + b"".join(len(p).to_bytes(8, "big") + p for p in (TOPIC.encode(), KEY, VALUE))
    old = {KEY_ID_HEADER: signer.key_id, SIGNATURE_HEADER: _b64(signer.private_key.sign(framed))}
    assert keys.verify(TOPIC, KEY, VALUE, old, NOW) == signer.key_id
    with pytest.raises(SignatureRefused, match="bad signature"):
        keys.verify(TOPIC, KEY, VALUE + b" ", old, NOW)


def test_a_key_set_file_that_is_not_ed25519_is_refused_clearly(tmp_path) -> None:
    path = tmp_path / "keys.json"
    path.write_text('{"keys": [{"kty": "RSA", "kid": "k1", "n": "x", "e": "AQAB"}]}')
    with pytest.raises(ValueError, match="keys.json: .*not an Ed25519"):
        KeySet.from_file(path)


def test_a_private_key_round_trips_through_pem(signer: Signer, tmp_path) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(signer.pem())
    again = Signer.from_pem(signer.key_id, path)
    assert KeySet([signer.public()]).verify(TOPIC, KEY, VALUE, again.headers(TOPIC, KEY, VALUE), NOW)
