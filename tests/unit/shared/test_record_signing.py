"""Signed records: what a publisher produces verifies as the consumer receives it, and nothing else does."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.contracts.catalogue import COMMANDS
from shared.contracts.serving import LiftCommand
from shared.runtime.broker import emit
from shared.runtime.record_signing import (
    SigningSettings,
    publish_signed,
    record_signer,
    trusted_keys,
    verify_record,
)
from shared.runtime.signing import KeySet, SignatureRefused, Signer

NOW = datetime(2026, 12, 7, tzinfo=UTC)


@dataclass
class Record:
    """The parts of an aiokafka ConsumerRecord a verifier reads."""

    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]


@dataclass
class FakePublisher:
    """Records what would be produced, as a consumer would receive it (headers encoded as FastStream does)."""

    topic: str
    records: list[Record] = field(default_factory=list)

    async def publish(self, body: Any, *, key: bytes, headers: dict | None = None, **_: Any) -> None:
        assert isinstance(body, bytes), "a signed record goes as the bytes that were signed"
        encoded = tuple((name, value.encode()) for name, value in (headers or {}).items())
        self.records.append(Record(self.topic, key, body, encoded))


LIFT = LiftCommand(producer="enforcement", cluster_id="us-east", directive_id="EXP-1", revision=1)


async def produced(signer: Signer) -> Record:
    publisher = FakePublisher(COMMANDS.name)
    await emit(publisher, COMMANDS, LIFT, signer=signer)
    return publisher.records[0]


async def test_a_signed_record_verifies_and_parses_as_its_contract() -> None:
    signer = Signer.generate("enforcement-1")
    record = await produced(signer)
    assert verify_record(KeySet([signer.public()]), record, NOW) == "enforcement-1"
    assert LiftCommand.model_validate_json(record.value) == LIFT
    assert dict(record.headers)["content-type"] == b"application/json"


async def test_one_byte_changed_is_a_bad_signature() -> None:
    signer = Signer.generate("enforcement-1")
    record = await produced(signer)
    altered = Record(record.topic, record.key, record.value.replace(b"EXP-1", b"EXP-2"), record.headers)
    with pytest.raises(SignatureRefused) as refused:
        verify_record(KeySet([signer.public()]), altered, NOW)
    assert refused.value.reason == "bad signature"


async def test_moved_to_another_key_is_a_bad_signature() -> None:
    signer = Signer.generate("enforcement-1")
    record = await produced(signer)
    moved = Record(record.topic, b"eu-west", record.value, record.headers)
    with pytest.raises(SignatureRefused, match="bad signature"):
        verify_record(KeySet([signer.public()]), moved, NOW)


async def test_unsigned_unknown_and_retired_keys_are_refused_by_name() -> None:
    signer = Signer.generate("enforcement-1")
    record = await produced(signer)
    unsigned = Record(record.topic, record.key, record.value, (("content-type", b"application/json"),))
    with pytest.raises(SignatureRefused, match="unsigned"):
        verify_record(KeySet([signer.public()]), unsigned, NOW)
    with pytest.raises(SignatureRefused, match="unknown signing key"):
        verify_record(KeySet([Signer.generate("someone").public()]), record, NOW)
    retiring = KeySet([signer.public(retire_at=NOW + timedelta(hours=1))])
    assert verify_record(retiring, record, NOW) == "enforcement-1"  # rotation: accepted until its retire time
    with pytest.raises(SignatureRefused, match="retired signing key"):
        verify_record(retiring, record, NOW + timedelta(hours=1))


async def test_a_forged_signature_by_another_key_under_the_trusted_id_is_refused() -> None:
    trusted, forger = Signer.generate("enforcement-1"), Signer.generate("enforcement-1")
    with pytest.raises(SignatureRefused, match="bad signature"):
        verify_record(KeySet([trusted.public()]), await produced(forger), NOW)


async def test_without_a_signer_the_message_goes_as_before() -> None:
    sent: list[Any] = []

    class Plain:
        async def publish(self, body: Any, **kwargs: Any) -> None:
            sent.append((body, kwargs))

    await publish_signed(Plain(), COMMANDS, LIFT, None)
    assert sent[0][0] == LIFT and "headers" not in sent[0][1]


def test_signing_on_needs_a_key_and_a_key_set_off_needs_neither(tmp_path: Any) -> None:
    with pytest.raises(ValueError, match="COUNTERMAND_SIGNING_KEY_FILE"):
        record_signer(SigningSettings(mode="on"), "enforcement")
    with pytest.raises(ValueError, match="COUNTERMAND_SIGNING_TRUSTED_KEYS_FILE"):
        trusted_keys(SigningSettings(mode="on"), "agent")
    off = SigningSettings(mode="off")
    assert record_signer(off, "enforcement") is None and trusted_keys(off, "agent") is None
    signer = Signer.generate("enforcement-1")
    (tmp_path / "key.pem").write_bytes(signer.pem())
    (tmp_path / "keys.json").write_text(KeySet([signer.public()]).to_json())
    on = SigningSettings(
        mode="on", key_file=tmp_path / "key.pem", key_id="enforcement-1", trusted_keys_file=tmp_path / "keys.json"
    )
    assert record_signer(on, "enforcement").key_id == "enforcement-1"
    assert "enforcement-1" in trusted_keys(on, "agent")


async def test_a_record_must_be_signed_by_the_key_that_speaks_for_its_subject() -> None:
    east, west = Signer.generate("agent-us-east"), Signer.generate("agent-eu-west")
    keys = KeySet([east.public(subject="us-east"), west.public(subject="eu-west")])
    record = await produced(east)
    assert verify_record(keys, record, NOW, subject="us-east") == "agent-us-east"
    with pytest.raises(SignatureRefused, match="signed by the key of 'us-east', not by the key of 'eu-west'"):
        verify_record(keys, record, NOW, subject="eu-west")


async def test_a_key_naming_no_subject_speaks_for_none() -> None:
    anyone = Signer.generate("anyone")
    with pytest.raises(SignatureRefused, match="signed by a key that names no sender, not by the key of 'us-east'"):
        verify_record(KeySet([anyone.public()]), await produced(anyone), NOW, subject="us-east")


def test_a_key_subject_travels_in_the_jwk_set() -> None:
    key = Signer.generate("agent-us-east").public(subject="us-east")
    assert KeySet.from_json(KeySet([key]).to_json()).get("agent-us-east").subject == "us-east"
    with pytest.raises(ValueError, match="sub must be a non-empty string"):
        KeySet.from_json('{"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k", "x": "' + "A" * 43 + '", "sub": ""}]}')
