"""Settings of the console service."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.runtime.auth import AuthSettings
from shared.runtime.settings import ServiceSettings


class ConsoleSettings(ServiceSettings):
    """Console settings (env prefix COUNTERMAND_CONSOLE_); Kafka from COUNTERMAND_KAFKA_BOOTSTRAP."""

    model_config = SettingsConfigDict(env_prefix="COUNTERMAND_CONSOLE_", extra="forbid")

    http_host: str = Field("127.0.0.1", description="Address the web console listens on.")
    http_port: int = Field(8095, ge=0, le=65535, description="Port the web console listens on (0: any free port).")
    auth: AuthSettings = Field(default_factory=AuthSettings)
    intake_url: str = Field("http://127.0.0.1:8080", description="Base URL of intake (proposals, approvals).")
    impact_url: str = Field("http://127.0.0.1:8090", description="Base URL of impact (dry runs of drafts).")
    audit_url: str = Field("http://127.0.0.1:8088", description="Base URL of the audit service (customer lookup).")
    upstream_timeout_s: float = Field(30.0, gt=0, le=300, description="How long a call to another service may take.")
    secure_cookie: bool = Field(
        False, description="Mark the session cookie Secure (on whenever the console is served over HTTPS)."
    )
    broker_check_interval_s: float = Field(
        2.0, gt=0, le=60, description="How often the console checks that the broker answers (shown on live pages)."
    )
