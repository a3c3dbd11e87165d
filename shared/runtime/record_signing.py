"""Signed records on the wire: a publisher serialises a message once, signs exactly those bytes (with the topic
and key) and produces them; a consumer checks the record as it came in before acting on it (shared/signing.py
holds the keys and the signature scheme).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import structlog
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.contracts.catalogue import Topic, key_of
from shared.runtime.causation import producing
from shared.runtime.signing import KeySet, SignatureRefused, Signer

JSON = "application/json"  # what FastStream sets when it encodes a model itself; consumers decode by it

# Who signs the records others act on, and whose key set each verifier trusts (every deployment provisions keys
# from these: the local stack, `countermand signing keygen` for compose and Kubernetes, the deploy tests).
RECORD_SIGNERS: tuple[str, ...] = ("intake", "impact", "enforcement")
# Intake trusts its own key set: its view re-reads the directive topic at every start and must not take a
# forgery into its book (nor assign the next revision after one).
TRUSTED_SIGNERS: dict[str, str] = {
    "intake": "intake",
    "impact": "intake",
    "enforcement": "impact",
    "agent": "enforcement",
}


def key_files(folder: Path, service: str) -> tuple[Path, Path]:
    """Where `service`'s record signing key lives under `folder`: its private key (PEM, a folder of its own, so
    that a deployment can hand each signer its key alone) and its public JWK set (`public/`, for verifiers)."""
    return folder / service / "records.pem", folder / "public" / f"{service}-records.jwks.json"


def make_record_key(folder: Path, service: str, key_id: str) -> bool:
    """Generate `service`'s Ed25519 record signing key and its public JWK set under `folder` unless the private
    key exists (never overwritten); True when generated. The private key is readable by its owner only."""
    private, public = key_files(folder, service)
    if private.exists():
        return False
    signer = Signer.generate(key_id)
    private.parent.mkdir(parents=True, exist_ok=True)
    public.parent.mkdir(parents=True, exist_ok=True)
    private.touch(mode=0o600)
    private.write_bytes(signer.pem())
    public.write_text(KeySet([signer.public()]).to_json(), encoding="utf-8")
    return True


def agent_signer(cluster_id: str) -> str:
    """The signer name of one cluster's agent (its acks and heartbeats): its key folder and key id prefix."""
    return f"agent-{cluster_id}"


def agent_key_set_file(folder: Path) -> Path:
    """The public JWK set of every agent's key, each naming its cluster (COUNTERMAND_ENFORCEMENT_AGENT_KEYS_FILE)."""
    return folder / "public" / "agents-records.jwks.json"


def make_agent_keys(folder: Path, clusters: Iterable[str], key_id_suffix: str) -> list[str]:
    """Each cluster's agent key (unless it exists: never overwritten), then the agents' public set rebuilt from every
    agent key under `folder`, each entry's `sub` naming its cluster; returns the clusters whose key was made."""
    made = [c for c in clusters if make_record_key(folder, agent_signer(c), f"{agent_signer(c)}-{key_id_suffix}")]
    keys = []
    for public in sorted((folder / "public").glob("agent-*-records.jwks.json")):
        cluster = public.name.removeprefix("agent-").removesuffix("-records.jwks.json")
        keys += [replace(key, subject=cluster) for key in KeySet.from_file(public).keys()]
    agent_key_set_file(folder).write_text(KeySet(keys).to_json(), encoding="utf-8")
    return made


class SigningSettings(BaseSettings):
    """Record signatures (env prefix COUNTERMAND_SIGNING_): this process's signing key and the keys it trusts."""

    model_config = SettingsConfigDict(env_prefix="COUNTERMAND_SIGNING_", extra="forbid")

    mode: Literal["on", "off"] = Field(
        "on", description="off: nothing signed nor checked (local play only; a warning at start)."
    )
    key_file: Path | None = Field(None, description="Ed25519 private key (PEM) this process signs with.")
    key_id: str = Field("", max_length=128, description="Id of the signing key (the key-id header).")
    trusted_keys_file: Path | None = Field(
        None, description="JWK set of the public keys whose records this process accepts (with retire times)."
    )


def record_signer(settings: SigningSettings, service: str) -> Signer | None:
    """The process's signer; None when signing is off. Refuses to start without a key otherwise."""
    if _off(settings, service):
        return None
    if settings.key_file is None or not settings.key_id:
        raise ValueError(
            f"{service} signs what it publishes: set COUNTERMAND_SIGNING_KEY_FILE and COUNTERMAND_SIGNING_KEY_ID "
            "(or COUNTERMAND_SIGNING_MODE=off for local play)"
        )
    return Signer.from_pem(settings.key_id, settings.key_file)


def trusted_keys(settings: SigningSettings, service: str) -> KeySet | None:
    """The keys the process accepts; None when signing is off. Refuses to start without a key set otherwise."""
    if _off(settings, service):
        return None
    if settings.trusted_keys_file is None:
        raise ValueError(
            f"{service} checks signatures: set COUNTERMAND_SIGNING_TRUSTED_KEYS_FILE "
            "(or COUNTERMAND_SIGNING_MODE=off for local play)"
        )
    return KeySet.from_file(settings.trusted_keys_file)


def sender_keys(settings: SigningSettings, path: Path | None, variable: str) -> KeySet | None:
    """A second trusted set, for records of other senders (e.g. enforcement's of the agents); None when signing
    is off. Refuses to start without it otherwise."""
    if settings.mode == "off":
        return None
    if path is None:
        raise ValueError(f"set {variable} (or COUNTERMAND_SIGNING_MODE=off for local play)")
    return KeySet.from_file(path)


def _off(settings: SigningSettings, service: str) -> bool:
    if settings.mode == "off":
        structlog.get_logger(service=service).warning(
            "COUNTERMAND_SIGNING_MODE=off: records are neither signed nor checked; never in production"
        )
        return True
    return False


def encoded(message: Any) -> bytes:
    """The bytes of a contract message on the wire (serialised once: these are the bytes signed)."""
    return message.model_dump_json().encode()


def signed_headers(signer: Signer | None, topic: Topic, key: bytes | None, value: bytes) -> dict[str, str]:
    """The headers of a record: JSON content type, plus the signature when a signer is given."""
    headers = {"content-type": JSON}
    if signer is not None:
        headers.update(signer.headers(topic.name, key, value))
    return headers


async def publish_signed(
    publisher: Any,
    topic: Topic,
    message: Any,
    signer: Signer | None,
    *,
    value: bytes | None = None,
    no_confirm: bool = False,
) -> Any:
    """Produce a contract message as signed bytes with the catalogue's key (`value`: bytes already encoded).

    Without a signer the message goes as FastStream encodes it, as before. With `no_confirm` the returned
    future resolves once the broker acknowledges it.
    """
    key = key_of(topic, message)
    with producing(message):  # in the trace of the request or record it answers, else of its cause
        if signer is None and value is None:
            return await publisher.publish(
                message, key=key, correlation_id=getattr(message, "event_id", None), no_confirm=no_confirm
            )
        body = encoded(message) if value is None else value
        return await publisher.publish(
            body,
            key=key,
            headers=signed_headers(signer, topic, key, body),
            correlation_id=getattr(message, "event_id", None),
            no_confirm=no_confirm,
        )


def record_headers(record: Any) -> dict[str, bytes]:
    """A consumer record's headers by name (the last one wins, as a reader of one value expects)."""
    return {name: value for name, value in (getattr(record, "headers", None) or ())}


def verify_record(
    keys: KeySet | None,
    record: Any,
    now: datetime | None = None,
    *,
    subject: str | None = None,
    value_sha256: bytes | None = None,
) -> str | None:
    """The id of the key that signed this consumer record (None when checks are off); SignatureRefused naming
    the reason otherwise (unsigned, unknown or retired key, bad or malformed signature). With `subject`, the
    key must also be the one that speaks for it (its JWK `sub`): one agent cannot sign for another cluster."""
    if keys is None:
        return None
    key_id = keys.verify(record.topic, record.key, record.value, record_headers(record), now, value_sha256)
    if subject is not None:
        speaks_for = keys.get(key_id).subject  # type: ignore[union-attr]  (verify found it)
        if speaks_for != subject:
            who = f"the key of {speaks_for!r}" if speaks_for else "a key that names no sender"
            raise SignatureRefused(f"signed by {who}, not by the key of {subject!r}", key_id)
    return key_id


__all__ = [
    "RECORD_SIGNERS",
    "TRUSTED_SIGNERS",
    "SignatureRefused",
    "SigningSettings",
    "encoded",
    "agent_key_set_file",
    "agent_signer",
    "key_files",
    "make_agent_keys",
    "make_record_key",
    "publish_signed",
    "record_signer",
    "sender_keys",
    "trusted_keys",
    "verify_record",
]
