"""The audit's tree-head signing key, from settings: a PEM file and a key id, or unsigned dev mode said out loud."""

from __future__ import annotations

from cryptography.exceptions import UnsupportedAlgorithm
from pydantic import model_validator

from services.audit.settings import AuditSettings
from shared.runtime.signing import Signer


class SigningKeyMissing(ValueError):
    """The audit has no usable signing key and was not told to run unsigned."""


def checkpoint_signer(settings: AuditSettings) -> Signer | None:
    """The signer of tree heads; None only in unsigned dev mode; SigningKeyMissing naming the setting otherwise."""
    path = settings.signing_key_file
    if path is None:
        if settings.unsigned_dev:
            return None
        raise SigningKeyMissing(
            "no signing key: set COUNTERMAND_AUDIT_SIGNING_KEY_FILE to an Ed25519 PEM file "
            "(or COUNTERMAND_AUDIT_UNSIGNED_DEV=true in development only)"
        )
    try:
        return Signer.from_pem(settings.signing_key_id, path)
    except (OSError, ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise SigningKeyMissing(f"COUNTERMAND_AUDIT_SIGNING_KEY_FILE: {path}: {exc}") from exc


class RunSettings(AuditSettings):
    """Settings of a running audit service: refused at start without a signing key unless in unsigned dev mode."""

    @model_validator(mode="after")
    def _signing_key(self) -> RunSettings:
        checkpoint_signer(self)  # the key is read here so that a missing or bad one refuses the start
        return self
