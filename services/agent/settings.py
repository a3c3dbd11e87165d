"""Settings of the agent service (env prefix COUNTERMAND_AGENT_)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from shared.runtime.auth import AuthSettings
from shared.runtime.settings import ServiceSettings

CLUSTER_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
REPLICA_PATTERN = r"^([a-z0-9][a-z0-9-]{0,62})?$"
MODEL_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"


class AgentSettings(ServiceSettings):
    """One agent per serving cluster: which cluster, what it serves, where it listens and keeps state."""

    model_config = SettingsConfigDict(env_prefix="COUNTERMAND_AGENT_", extra="forbid")

    cluster_id: str = Field(..., pattern=CLUSTER_PATTERN, description="Serving cluster this agent enforces for.")
    replica_id: str = Field(
        "",
        pattern=REPLICA_PATTERN,
        description="Which replica of the cluster's agent this is, when several run for one cluster (each with its "
        "own id, state and consumer group; Kubernetes: the pod name). Empty: the cluster's single agent.",
    )
    region: str = Field("", max_length=64, description="Region of the cluster, reported in heartbeats.")
    models: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Models the cluster serves (comma-separated in the environment)."
    )
    http_host: str = Field("127.0.0.1", description="Address the access-check HTTP API listens on.")
    http_port: int = Field(8085, ge=0, le=65535, description="Port of the HTTP API (0: any free port).")
    auth: AuthSettings = Field(default_factory=AuthSettings)
    heartbeat_interval_s: float = Field(2.0, gt=0, description="Seconds between heartbeats.")
    readiness_poll_s: float = Field(0.2, gt=0, description="Seconds between catch-up checks while not ready.")
    stale_after_s: float = Field(
        30.0,
        gt=0,
        description="Seconds without hearing from the control plane (a command arriving, or a heartbeat "
        "acknowledged by the broker while the command consumer runs) after which the agent "
        "is stale and applies each directive's on_stale policy.",
    )
    chunk_timeout_s: float = Field(
        60.0,
        gt=0,
        description="Seconds a directive revision may wait for missing chunks before it is discarded "
        "and reported failed (never applied partially).",
    )
    fold_after_quiet_s: float = Field(
        2.0,
        ge=0,
        description="A revision applied from its staged chunks is rewritten as plain sets in the snapshot "
        "once no command came for this long (housekeeping kept off busy moments).",
    )

    @field_validator("models", mode="before")
    @classmethod
    def _split_models(cls, value: object) -> object:
        if isinstance(value, str):
            return [m.strip() for m in value.split(",") if m.strip()]
        return value

    @field_validator("models")
    @classmethod
    def _check_models(cls, value: list[str]) -> list[str]:
        bad = [m for m in value if not re.fullmatch(MODEL_PATTERN, m)]
        if bad:
            raise ValueError(f"not a model name: {', '.join(bad)}")
        return value

    @property
    def group(self) -> str:
        """The agent's consumer group: one per cluster, and one per replica of it (replicas never share one: each
        reads every command of the cluster's partition and commits its own offsets)."""
        single = f"countermand-agent-{self.cluster_id}"  # shared.runtime.acls.agent_group: a test keeps them equal
        return f"{single}.{self.replica_id}" if self.replica_id else single

    @property
    def store_name(self) -> str:
        """The file of its state under the state dir: one per replica."""
        return f"{self.cluster_id}.{self.replica_id}.sqlite3" if self.replica_id else f"{self.cluster_id}.sqlite3"
