"""Settings read from the environment with pydantic-settings; every class forbids unknown keys."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class KafkaSettings(BaseSettings):
    """How to reach Kafka (env prefix COUNTERMAND_KAFKA_)."""

    model_config = SettingsConfigDict(env_prefix="COUNTERMAND_KAFKA_", extra="forbid")

    bootstrap: str = Field("127.0.0.1:9092", description="Comma-separated bootstrap servers.")
    max_request_bytes: int = Field(2 * 1024 * 1024, ge=1024, description="Largest message a producer sends.")
    linger_ms: int = Field(2, ge=0, description="Producer batching delay.")


class LogSettings(BaseSettings):
    """Logging (env prefix COUNTERMAND_LOG_)."""

    model_config = SettingsConfigDict(env_prefix="COUNTERMAND_LOG_", extra="forbid")

    format: Literal["auto", "json", "console"] = Field("auto", description="auto: JSON unless a terminal.")
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Lowest level logged.")


class TelemetrySettings(BaseSettings):
    """OpenTelemetry tracing (env prefix COUNTERMAND_OTEL_); off by default."""

    model_config = SettingsConfigDict(env_prefix="COUNTERMAND_OTEL_", extra="forbid")

    exporter: Literal["none", "console", "memory"] = Field("none", description="Where spans go.")


class ServiceSettings(BaseSettings):
    """Settings every service has; each service subclasses it with its own env prefix."""

    model_config = SettingsConfigDict(extra="forbid")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    instance: str = Field("0", min_length=1, description="Instance name, for logs and producer ids.")
    state_dir: Path = Field(Path(".run/state"), description="Folder for this service's durable state.")
