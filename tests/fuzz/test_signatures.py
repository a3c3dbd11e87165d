"""Fuzzed record signatures: a verifier accepts a record only as its current key signed it; anything else is a
SignatureRefused naming why (truncated or resized signatures, swapped or unknown key ids, garbage headers)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from shared.runtime.record_signing import verify_record
from shared.runtime.signing import KEY_ID_HEADER, SIGNATURE_HEADER, KeySet, SignatureRefused, Signer

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
CURRENT, OTHER, RETIRED, STRANGER = (Signer.generate(k) for k in ("enf-2", "impact-1", "enf-1", "enf-9"))
KEYS = KeySet([CURRENT.public(), OTHER.public(), RETIRED.public(NOW - timedelta(seconds=1))])
REASONS = {"unsigned", "unknown signing key", "retired signing key", "malformed signature", "bad signature"}
TOPIC = "serving.commands.v1"

topics = st.sampled_from([TOPIC, "compliance.impact.v1", "compliance.directives.v1", ""])
keys = st.one_of(st.none(), st.binary(max_size=64))
values = st.binary(max_size=2048)
header_values = st.one_of(st.binary(max_size=200), st.text(max_size=200))


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def signature_of(headers: dict[str, str]) -> bytes:
    text = headers[SIGNATURE_HEADER]
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def refused(headers: dict, topic: str = TOPIC, key: bytes | None = b"k", value: bytes = b"v") -> str:
    with pytest.raises(SignatureRefused) as caught:
        KEYS.verify(topic, key, value, headers, NOW)
    assert caught.value.reason in REASONS
    return caught.value.reason


@given(topics, keys, values)
def test_a_record_signed_by_a_current_key_verifies(topic: str, key: bytes | None, value: bytes) -> None:
    assert KEYS.verify(topic, key, value, CURRENT.headers(topic, key, value), NOW) == CURRENT.key_id


@given(topics, keys, values, st.data())
def test_a_truncated_or_resized_signature_is_refused(topic: str, key: bytes | None, value: bytes, data) -> None:
    headers = CURRENT.headers(topic, key, value)
    raw = signature_of(headers)
    cut = data.draw(st.integers(0, len(raw) - 1))
    padding = data.draw(st.binary(min_size=1, max_size=64))
    for wrong in (raw[:cut], raw + padding, padding + raw[cut:]):
        assert refused({**headers, SIGNATURE_HEADER: b64(wrong)}, topic, key, value) in {
            "bad signature",
            "malformed signature",
        }


@given(topics, keys, values)
def test_a_signature_under_another_keys_id_is_refused(topic: str, key: bytes | None, value: bytes) -> None:
    for signer, claimed in ((CURRENT, OTHER.key_id), (OTHER, CURRENT.key_id), (STRANGER, CURRENT.key_id)):
        headers = {**signer.headers(topic, key, value), KEY_ID_HEADER: claimed}
        assert refused(headers, topic, key, value) == "bad signature"


@given(topics, keys, values)
def test_an_unknown_or_retired_key_is_refused(topic: str, key: bytes | None, value: bytes) -> None:
    assert refused(STRANGER.headers(topic, key, value), topic, key, value) == "unknown signing key"
    assert refused(RETIRED.headers(topic, key, value), topic, key, value) == "retired signing key"


@given(topics, keys, values, values)
def test_a_signature_over_other_bytes_is_refused(topic: str, key: bytes | None, value: bytes, other: bytes) -> None:
    assume(other != value)
    assert refused(CURRENT.headers(topic, key, other), topic, key, value) == "bad signature"


@given(st.dictionaries(st.sampled_from([KEY_ID_HEADER, SIGNATURE_HEADER, "content-type", "x"]), header_values))
def test_garbage_headers_are_refused_with_a_reason(headers: dict) -> None:
    refused(headers)


class Record:
    """A consumer record as aiokafka gives it: headers a sequence of (name, bytes) pairs, repeats allowed."""

    def __init__(self, headers: list[tuple[str, bytes]], value: bytes) -> None:
        self.topic, self.key, self.value, self.headers = TOPIC, b"k", value, headers


@given(st.lists(st.tuples(st.sampled_from([KEY_ID_HEADER, SIGNATURE_HEADER, "y"]), st.binary(max_size=100))), values)
def test_a_consumer_record_with_any_headers_is_verified_or_refused(headers: list, value: bytes) -> None:
    try:
        assert verify_record(KEYS, Record(headers, value), NOW) in {CURRENT.key_id, OTHER.key_id}
    except SignatureRefused as exc:
        assert exc.reason in REASONS


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
jwk_fields = st.fixed_dictionaries(
    {},
    optional={
        "kty": st.sampled_from(["OKP", "EC", 1]) | json_values,
        "crv": st.sampled_from(["Ed25519", "X25519"]) | json_values,
        "kid": st.text(max_size=10) | json_values,
        "x": st.sampled_from([CURRENT.public().jwk()["x"], "", "AAAA"]) | json_values,
        "retire_at": st.sampled_from(["2026-12-07T12:00:00+00:00", "2026-12-07T12:00:00", "soon"]) | json_values,
    },
)


@given(st.one_of(json_values, st.fixed_dictionaries({"keys": st.lists(jwk_fields | json_values, max_size=3)})))
@example({"keys": [None]})  # was an AttributeError, not a refusal naming the file's problem
@example({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k", "x": 1}]})
@example({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k", "x": "AAAA"}]})
def test_a_key_set_file_of_any_shape_loads_or_is_refused_by_name(document) -> None:
    try:
        KeySet.from_json(json.dumps(document))
    except ValueError as exc:
        assert "not a JWK set" in str(exc)
