"""Settings of the intake service."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.runtime.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    """Intake settings (env prefix COUNTERMAND_INTAKE_); Kafka from COUNTERMAND_KAFKA_BOOTSTRAP."""

    model_config = SettingsConfigDict(env_prefix="COUNTERMAND_INTAKE_", extra="forbid")

    http_host: str = Field("127.0.0.1", description="Address the HTTP API listens on.")
    http_port: int = Field(8080, ge=0, le=65535, description="Port the HTTP API listens on (0: any free port).")
