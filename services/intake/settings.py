"""Settings of the intake service."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.contracts.limits import MAX_APPROVERS
from shared.runtime.auth import AuthSettings
from shared.runtime.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    """Intake settings (env prefix COUNTERMAND_INTAKE_); Kafka from COUNTERMAND_KAFKA_BOOTSTRAP."""

    model_config = SettingsConfigDict(env_prefix="COUNTERMAND_INTAKE_", extra="forbid")

    http_host: str = Field("127.0.0.1", description="Address the HTTP API listens on.")
    http_port: int = Field(8080, ge=0, le=65535, description="Port the HTTP API listens on (0: any free port).")
    auth: AuthSettings = Field(default_factory=AuthSettings)
    approvals_needed: int = Field(
        1,
        ge=1,
        le=MAX_APPROVERS,
        description="Approvals by distinct subjects other than the proposer a directive, amendment or lift takes.",
    )
    proposal_ttl_s: float = Field(
        24 * 3600, gt=0, le=30 * 24 * 3600, description="Seconds a proposal stays open for approval."
    )
