"""Settings of the enforcement service."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from shared.runtime.settings import ServiceSettings

ENVELOPE_BYTES = 16 * 1024  # a set-copy record's key, headers and batch overhead, generously
REPLICA_LAPSE_S = 30.0  # the agent's own staleness bound by default (COUNTERMAND_AGENT_STALE_AFTER_S)


class EnforcementSettings(ServiceSettings):
    """Enforcement service settings (env prefix COUNTERMAND_ENFORCEMENT_)."""

    model_config = SettingsConfigDict(env_prefix="COUNTERMAND_ENFORCEMENT_", extra="forbid")

    http_host: str = Field("127.0.0.1", description="Address of the health endpoints (/healthz, /readyz).")
    http_port: int = Field(
        0,
        ge=0,
        le=65535,
        description='Port of the health endpoints (0: any free port, logged in the "service ready" line).',
    )

    agent_keys_file: Path | None = Field(
        None,
        description="JWK set of the agents' public record keys, each key's `sub` naming its cluster: acks and "
        "heartbeats count only when signed by their cluster's key (required unless COUNTERMAND_SIGNING_MODE=off).",
    )
    deadline_check_interval_s: float = Field(1.0, gt=0, description="How often deadlines and re-sends are checked.")
    resend_backoff_base_s: float = Field(1.0, gt=0, description="First delay before a re-send; doubles per attempt.")
    resend_backoff_cap_s: float = Field(60.0, gt=0, description="Longest delay between two re-sends.")
    heartbeat_grace_s: float = Field(
        3.0,
        ge=0,
        description="After start, how long a complete assessment waits "
        "for agent heartbeats before its targets are chosen.",
    )
    replica_lapse_s: float = Field(
        REPLICA_LAPSE_S,
        gt=0,
        description="An agent replica whose last heartbeat is older than this is no longer live: a cluster is "
        "applied once every live replica holds the expected digest. Keep it at least the agents' "
        "COUNTERMAND_AGENT_STALE_AFTER_S, so that a replica cut off from Kafka has gone stale (its on_stale policy) "
        "before it stops counting.",
    )
    fold_after_quiet_s: float = Field(
        2.0,
        ge=0,
        description="Rollouts started from their assessment's parts get "
        "their sets written once no impact message came for "
        "this long (housekeeping kept off busy moments).",
    )
    chunk_ids: int = Field(1_000_000, ge=1, description="User ids per set-copy chunk (serving.sets.v1) at most.")
    chunk_bytes: int = Field(
        1_500_000,
        ge=1024,
        description="Bytes of a set-copy chunk record's value (serving.sets.v1) at "
        "most; keep it below the sets topic's "
        "max.message.bytes and the producer's request size.",
    )

    @model_validator(mode="after")
    def _chunks_fit_a_request(self) -> EnforcementSettings:
        if self.chunk_bytes + ENVELOPE_BYTES > self.kafka.max_request_bytes:
            raise ValueError(
                f"chunk_bytes: {self.chunk_bytes} plus the record's key and headers do not fit "
                f"kafka.max_request_bytes={self.kafka.max_request_bytes}"
            )
        return self
