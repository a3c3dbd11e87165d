"""Settings of the impact service (env prefix COUNTERMAND_IMPACT_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.runtime.auth import AuthSettings
from shared.runtime.settings import ServiceSettings


class ImpactSettings(ServiceSettings):
    """Impact service settings: registry catch-up, snapshots of the user view and the HTTP API."""

    model_config = SettingsConfigDict(env_prefix="COUNTERMAND_IMPACT_", extra="forbid")

    catch_up_timeout_s: float = Field(
        30.0, gt=0, description="How long an assessment waits for the user view to reach the registry's end offsets."
    )
    registry_batch: int = Field(20_000, ge=1, description="Most registry records applied as one batch.")
    registry_wait_ms: int = Field(
        5,
        ge=1,
        description="How long the registry consumer waits for records before it polls again: "
        "bounds how late a registry change's delta can be.",
    )
    http_host: str = Field("127.0.0.1", description="Address the HTTP API (dry runs, health) listens on.")
    http_port: int = Field(8090, ge=0, le=65535, description="Port of the HTTP API (0: any free port).")
    auth: AuthSettings = Field(default_factory=AuthSettings)
    snapshot_interval_s: float = Field(
        300.0, ge=0, description="Seconds between snapshots of the user view (0: no timed snapshots)."
    )
    snapshot_every_records: int = Field(
        5_000_000, ge=0, description="Snapshot after this many registry records applied (0: never by count)."
    )
    snapshot_on_stop: bool = Field(True, description="Write a snapshot at clean shutdown.")
