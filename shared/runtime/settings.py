"""Settings read from the environment with pydantic-settings; every class forbids unknown keys."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.contracts.catalogue import MAX_MESSAGE_BYTES
from shared.runtime.auth import AuthSettings
from shared.runtime.record_signing import SigningSettings


class KafkaSettings(BaseSettings):
    """How every Kafka client of a process connects (env prefix COUNTERMAND_KAFKA_); read by shared.runtime.kafka."""

    model_config = SettingsConfigDict(env_prefix="COUNTERMAND_KAFKA_", extra="forbid")

    bootstrap: str = Field("127.0.0.1:9092", min_length=1, description="Comma-separated bootstrap servers.")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How clients talk to the brokers: SASL_SSL in production."
    )
    sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = Field(
        "SCRAM-SHA-512", description="SASL mechanism, when the protocol is SASL_PLAINTEXT or SASL_SSL."
    )
    sasl_username: str = Field("", description="This process's Kafka principal (SASL user name).")
    sasl_password: SecretStr = Field(SecretStr(""), description="Password of the SASL user.")
    ssl_cafile: Path | None = Field(
        None, description="PEM file of the CA that signed the brokers' certificates (the system's CAs when absent)."
    )
    ssl_certfile: Path | None = Field(
        None, description="PEM client certificate, for brokers that require TLS client authentication."
    )
    ssl_keyfile: Path | None = Field(None, description="PEM private key of the client certificate.")
    ssl_check_hostname: bool = Field(True, description="Check that a broker's certificate names its host.")
    client_id_prefix: str = Field(
        "countermand",
        min_length=1,
        max_length=100,
        description="Prefix of every client id (a client id names its service and use).",
    )
    request_timeout_ms: int = Field(40_000, ge=1000, description="How long a client waits for a broker's answer.")
    compression: Literal["none", "gzip", "lz4", "zstd"] = Field(
        "none", description="Compression of what producers send (none: sets are compressed roaring bitmaps)."
    )
    max_request_bytes: int = Field(
        MAX_MESSAGE_BYTES,
        ge=1024,
        le=MAX_MESSAGE_BYTES,
        description="Largest message a producer sends; at most the topics' "
        "max.message.bytes (shared.contracts.catalogue).",
    )
    linger_ms: int = Field(2, ge=0, description="Producer batching delay.")

    @model_validator(mode="after")
    def _credentials(self) -> KafkaSettings:
        if self.security_protocol.startswith("SASL") and not (
            self.sasl_username and self.sasl_password.get_secret_value()
        ):
            raise ValueError(
                f"security_protocol {self.security_protocol} needs sasl_username and sasl_password "
                "(COUNTERMAND_KAFKA_SASL_USERNAME, COUNTERMAND_KAFKA_SASL_PASSWORD)"
            )
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("ssl_certfile and ssl_keyfile go together")
        if not self.servers:
            raise ValueError(f"bootstrap names no server: {self.bootstrap!r} (host:port, comma-separated)")
        return self

    @property
    def servers(self) -> list[str]:
        """The bootstrap servers one by one (every client takes the list: FastStream would take the whole
        comma-separated text for one host name)."""
        return [server.strip() for server in self.bootstrap.split(",") if server.strip()]

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")


class LogSettings(BaseSettings):
    """Logging (env prefix COUNTERMAND_LOG_)."""

    model_config = SettingsConfigDict(env_prefix="COUNTERMAND_LOG_", extra="forbid")

    format: Literal["auto", "json", "console"] = Field("auto", description="auto: JSON unless a terminal.")
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Lowest level logged.")


class TelemetrySettings(BaseSettings):
    """OpenTelemetry tracing (env prefix COUNTERMAND_OTEL_); off by default."""

    model_config = SettingsConfigDict(env_prefix="COUNTERMAND_OTEL_", extra="forbid")

    exporter: Literal["none", "console", "memory", "otlp"] | None = Field(
        None,
        description="Where spans go; otlp sends them over OTLP/HTTP as the standard OTEL_EXPORTER_OTLP_* "
        "variables say. Unset: OTEL_TRACES_EXPORTER decides (otlp, console or none; none when "
        "unset too).",
    )


class ServiceSettings(BaseSettings):
    """Settings every service has; each service subclasses it with its own env prefix."""

    model_config = SettingsConfigDict(extra="forbid")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    signing: SigningSettings = Field(default_factory=SigningSettings)
    instance: str = Field("0", min_length=1, description="Instance name, for logs and producer ids.")
    state_dir: Path = Field(Path(".run/state"), description="Folder for this service's durable state.")


def kafka_settings(bootstrap: str | None = None) -> KafkaSettings:
    """The environment's Kafka settings, with the bootstrap servers replaced when given (a CLI's --bootstrap)."""
    settings = KafkaSettings()
    return settings.model_copy(update={"bootstrap": bootstrap}) if bootstrap else settings


# AuthSettings is a section of the services with an API (intake, impact, agent); the others accept its
# variables too, so one environment can carry them for every process.
SECTIONS: tuple[type[BaseSettings], ...] = (
    KafkaSettings,
    LogSettings,
    TelemetrySettings,
    AuthSettings,
    SigningSettings,
)
# Prefixes of every process that reads COUNTERMAND_* settings: a shared environment (a compose anchor, a
# ConfigMap) may carry another one's variables, which are that process's to check.
PROCESS_PREFIXES = tuple(
    f"COUNTERMAND_{name.upper()}_"
    for name in ("intake", "impact", "enforcement", "agent", "notifier", "audit", "console")
)
CLIENT_VARIABLES: dict[str, str] = {
    "COUNTERMAND_INTAKE_URL": "Base URL of intake for the `countermand directive ...` commands.",
    "COUNTERMAND_IMPACT_URL": "Base URL of the impact service for `countermand directive preview`.",
    "COUNTERMAND_TEST_KAFKA_DIR": "Data folder of the broker the test session starts (`make test` sets it).",
    "COUNTERMAND_TOKEN": "Bearer token the `countermand` commands send to intake and impact (or pass --token).",
}


class UnknownSetting(ValueError):
    """A COUNTERMAND_* variable that no setting of this process reads (a typo would otherwise pass silently)."""


def variable_names(settings_cls: type[BaseSettings]) -> set[str]:
    """The environment variables a settings class reads (nested sections excluded: they have their own prefix)."""
    prefix = settings_cls.model_config.get("env_prefix", "")
    names = set()
    for name, field in settings_cls.model_fields.items():
        if field.annotation in SECTIONS:
            continue
        alias = field.validation_alias
        if isinstance(alias, str):
            names.add(alias.upper())  # an alias is the whole variable name, without the prefix
        elif isinstance(alias, AliasChoices):
            names.update(c.upper() for c in alias.choices if isinstance(c, str))
        else:
            names.add(f"{prefix}{name}".upper())
    return names


def unknown_variables(settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """COUNTERMAND_* variables of `environ` that this process should read but no setting does, each with the
    closest valid name (None when nothing is close). Another process's variables are left alone."""
    own_prefix = settings_cls.model_config.get("env_prefix", "").upper()
    valid = variable_names(settings_cls).union(*(variable_names(s) for s in SECTIONS)) | set(CLIENT_VARIABLES)
    section_prefixes = tuple(s.model_config["env_prefix"] for s in SECTIONS)
    others = tuple(p for p in PROCESS_PREFIXES if p != own_prefix)
    found = []
    for name in sorted(k for k in environ if k.upper().startswith("COUNTERMAND_")):
        upper = name.upper()
        if upper in valid or (upper.startswith(others) and not upper.startswith(section_prefixes)):
            continue
        # Compared without the common COUNTERMAND_ prefix, which would make every name look close.
        tails = {v.removeprefix("COUNTERMAND_"): v for v in valid}
        close = difflib.get_close_matches(upper.removeprefix("COUNTERMAND_"), sorted(tails), n=1, cutoff=0.75)
        found.append((name, tails[close[0]] if close else None))
    return found


def refuse_unknown_variables(settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
    """Raise UnknownSetting naming each unknown COUNTERMAND_* variable and the closest valid one."""
    found = unknown_variables(settings_cls, environ)
    if found:
        raise UnknownSetting(
            "; ".join(
                f"unknown setting {name}" + (f" (did you mean {close}?)" if close else "") for name, close in found
            )
        )
