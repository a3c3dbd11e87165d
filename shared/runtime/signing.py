"""Ed25519 signatures on Kafka records: who may issue directives and commands is checked by whoever acts on them.

A signature covers the topic, the key and the SHA-256 of the value bytes exactly as produced, so a signed record
cannot be moved to another topic or key, nor altered by one byte. Keys have ids and an optional retire time.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

KEY_ID_HEADER = "countermand-key-id"
SIGNATURE_HEADER = "countermand-signature"
_DOMAIN = b"countermand-record-v2\n"
_DOMAIN_V1 = b"countermand-record-v1\n"  # the value itself signed: still verified, for records stored before v2


class SignatureRefused(ValueError):
    """A record whose signature does not prove it came from a current key; `reason` names why."""

    def __init__(self, reason: str, key_id: str | None = None) -> None:
        super().__init__(reason if key_id is None else f"{reason} (key id {key_id!r})")
        self.reason = reason
        self.key_id = key_id


def signed_bytes(topic: str, key: bytes | None, value: bytes, value_sha256: bytes | None = None) -> bytes:
    """What a signature covers: a domain tag, then topic, key and the value's SHA-256, each length-prefixed
    (unambiguous). Ed25519 hashes what it signs twice with SHA-512 and the value may be megabytes (a command's
    set): hashed once with SHA-256 (hardware-accelerated) it costs a fraction, and the signed message stays small.
    `value_sha256`: that hash, when the caller computed it already."""
    return _framed(_DOMAIN, topic, key, value_sha256 or hashlib.sha256(value).digest())


def _signed_bytes_v1(topic: str, key: bytes | None, value: bytes) -> bytes:
    return _framed(_DOMAIN_V1, topic, key, value)


def _framed(domain: bytes, topic: str, key: bytes | None, value: bytes) -> bytes:
    parts = [topic.encode(), key or b"", value]
    return domain + b"".join(len(p).to_bytes(8, "big") + p for p in parts)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Signer:
    """A private signing key and its id: produces the headers that travel with a record."""

    key_id: str
    private_key: Ed25519PrivateKey

    @classmethod
    def generate(cls, key_id: str) -> Signer:
        return cls(key_id, Ed25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, key_id: str, path: Path) -> Signer:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path}: not an Ed25519 private key")
        return cls(key_id, key)

    def pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def public(self, retire_at: datetime | None = None, subject: str | None = None) -> VerifyKey:
        return VerifyKey(self.key_id, self.private_key.public_key(), retire_at, subject)

    def headers(self, topic: str, key: bytes | None, value: bytes) -> dict[str, str]:
        """The signature headers for one record."""
        signature = self.private_key.sign(signed_bytes(topic, key, value))
        return {KEY_ID_HEADER: self.key_id, SIGNATURE_HEADER: _b64(signature)}


@dataclass(frozen=True)
class VerifyKey:
    """A public key a verifier accepts, until `retire_at` when given."""

    key_id: str
    public_key: Ed25519PublicKey
    retire_at: datetime | None = None
    subject: str | None = None  # whom the key speaks for when a verifier needs to know (an agent's cluster)

    def jwk(self) -> dict[str, str]:
        raw = self.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        entry = {"kty": "OKP", "crv": "Ed25519", "kid": self.key_id, "x": _b64(raw)}
        if self.retire_at is not None:
            entry["retire_at"] = self.retire_at.isoformat()
        if self.subject is not None:
            entry["sub"] = self.subject
        return entry


class KeySet:
    """The public keys a verifier trusts, by id; read from a JWK set file (`{"keys": [...]}`)."""

    def __init__(self, keys: Iterable[VerifyKey]) -> None:
        self._keys = {k.key_id: k for k in keys}

    def keys(self) -> list[VerifyKey]:
        return list(self._keys.values())

    def __contains__(self, key_id: str) -> bool:
        return key_id in self._keys

    def get(self, key_id: str) -> VerifyKey | None:
        return self._keys.get(key_id)

    @classmethod
    def from_json(cls, text: str) -> KeySet:
        try:
            entries = json.loads(text)["keys"]
            return cls(_verify_key(entry) for entry in entries)
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"not a JWK set of Ed25519 keys: {exc}") from exc

    @classmethod
    def from_file(cls, path: Path) -> KeySet:
        try:
            return cls.from_json(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from exc

    def to_json(self) -> str:
        return json.dumps({"keys": [k.jwk() for k in self._keys.values()]}, indent=2)

    def verify(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: Mapping[str, bytes | str],
        now: datetime | None = None,
        value_sha256: bytes | None = None,
    ) -> str:
        """The id of the key that signed this record; SignatureRefused naming the reason otherwise. `value_sha256`:
        the value's SHA-256, when the caller computed it already (it is not computed again)."""
        key_id = _text(headers.get(KEY_ID_HEADER))
        signature = _text(headers.get(SIGNATURE_HEADER))
        if key_id is None or signature is None:
            raise SignatureRefused("unsigned")
        known = self._keys.get(key_id)
        if known is None:
            raise SignatureRefused("unknown signing key", key_id)
        if known.retire_at is not None and (now or datetime.now(UTC)) >= known.retire_at:
            raise SignatureRefused("retired signing key", key_id)
        try:
            raw = _unb64(signature)
        except ValueError as exc:
            raise SignatureRefused("malformed signature", key_id) from exc
        try:
            known.public_key.verify(raw, signed_bytes(topic, key, value, value_sha256))
        except InvalidSignature:
            try:  # a record signed before the value was hashed first (an audit ledger, a retained topic)
                known.public_key.verify(raw, _signed_bytes_v1(topic, key, value))
            except InvalidSignature as exc:
                raise SignatureRefused("bad signature", key_id) from exc
        return key_id


def _text(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        try:
            return value.decode("ascii")
        except UnicodeDecodeError:
            return ""
    return value


def _verify_key(entry: object) -> VerifyKey:
    if not isinstance(entry, Mapping):
        raise ValueError(f"a key entry must be an object, not {type(entry).__name__}")
    if entry.get("kty") != "OKP" or entry.get("crv") != "Ed25519":
        raise ValueError(f"key {entry.get('kid')!r} is not an Ed25519 OKP key")
    kid, x, retire = entry.get("kid"), entry.get("x"), entry.get("retire_at")
    if not isinstance(kid, str) or not kid:
        raise ValueError("a key without an id")
    if not isinstance(x, str):
        raise ValueError(f"key {kid!r}: x must be the base64url public key")
    public = Ed25519PublicKey.from_public_bytes(_unb64(x))
    if retire is not None and not isinstance(retire, str):
        raise ValueError(f"key {kid!r}: retire_at must be an ISO 8601 time")
    retire_at = datetime.fromisoformat(retire) if retire else None
    if retire_at is not None and retire_at.tzinfo is None:
        raise ValueError(f"key {kid!r}: retire_at needs a time zone")
    subject = entry.get("sub")
    if subject is not None and (not isinstance(subject, str) or not subject):
        raise ValueError(f"key {kid!r}: sub must be a non-empty string")
    return VerifyKey(kid, public, retire_at, subject)
