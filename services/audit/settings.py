"""Settings of the audit service (env prefix COUNTERMAND_AUDIT_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from shared.contracts.catalogue import BY_NAME
from shared.runtime.auth import AuthSettings
from shared.runtime.settings import ServiceSettings


class AuditSettings(ServiceSettings):
    """Audit ledger, batching and checkpoint cadence."""

    model_config = SettingsConfigDict(env_prefix="COUNTERMAND_AUDIT_", extra="forbid")

    http_host: str = Field("127.0.0.1", description="Address of the health endpoints (/healthz, /readyz).")
    http_port: int = Field(
        0,
        ge=0,
        le=65535,
        description='Port of the health endpoints (0: any free port, logged in the "service ready" line).',
    )

    auth: AuthSettings | None = Field(
        None,
        description="Who may call /v1/explain and /v1/reports (role auditor); unset: read from COUNTERMAND_AUTH_* "
        "when the service is built (the read-only CLI needs none).",
    )

    group: str = Field("countermand-audit", min_length=1, description="Consumer group of the ledger.")
    batch_max_records: int = Field(5000, ge=1, description="Most records appended in one transaction.")
    batch_timeout_ms: int = Field(200, ge=1, description="Longest wait to fill a batch.")
    checkpoint_every: int = Field(10_000, ge=1, description="Publish a checkpoint after this many new entries.")
    checkpoint_interval_s: float = Field(
        10.0, gt=0, description="Publish a checkpoint this long after the last one if entries were added."
    )

    signing_key_file: Path | None = Field(
        None, description="PEM file of the Ed25519 private key that signs tree heads (checkpoints)."
    )
    signing_key_id: str = Field(
        "audit-1", min_length=1, max_length=100, description="Key id published with each signed tree head."
    )
    export_dir: Path | None = Field(
        None,
        description="Folder of exported signed tree heads (and keys.jwks.json) that `countermand audit verify` "
        "checks the ledger against by default; keep it outside the audit's host.",
    )
    unsigned_dev: bool = Field(
        False,
        description="Development only: run without a signing key, publishing unsigned checkpoints "
        "(without it, a missing key refuses the start).",
    )

    record_keys: dict[str, Path] = Field(
        default_factory=dict,
        description="Record signature checks: JSON map of topic to the JWK set of the keys that sign it, e.g. "
        '{"compliance.directives.v1": "intake.jwks.json"}. Every record on a listed topic that is unsigned, altered, '
        "or signed by an unknown or retired key is reported as a forgery and never used as evidence; on "
        "serving.acks.v1 (the agents' set, each key's `sub` naming its cluster) also one signed by another "
        "cluster's key.",
    )

    @field_validator("record_keys")
    @classmethod
    def _known_topics(cls, value: dict[str, Path]) -> dict[str, Path]:
        unknown = sorted(set(value) - set(BY_NAME))
        if unknown:
            raise ValueError(f"record_keys: unknown topics {', '.join(unknown)}")
        return value

    @property
    def ledger_path(self) -> Path:
        """Where the ledger lives: state_dir/audit/ledger.sqlite."""
        return self.state_dir / "audit" / "ledger.sqlite"
