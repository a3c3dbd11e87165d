"""Settings of the enforcement service."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.contracts.bitmaps import CHUNK_IDS
from shared.runtime.settings import ServiceSettings


class EnforcementSettings(ServiceSettings):
    """Enforcement service settings (env prefix COUNTERMAND_ENFORCEMENT_)."""

    model_config = SettingsConfigDict(env_prefix="COUNTERMAND_ENFORCEMENT_", extra="forbid")

    deadline_check_interval_s: float = Field(1.0, gt=0, description="How often deadlines and re-sends are checked.")
    resend_backoff_base_s: float = Field(1.0, gt=0, description="First delay before a re-send; doubles per attempt.")
    resend_backoff_cap_s: float = Field(60.0, gt=0, description="Longest delay between two re-sends.")
    heartbeat_grace_s: float = Field(3.0, ge=0, description="After start, how long a complete assessment waits "
                                                           "for agent heartbeats before its targets are chosen.")
    chunk_ids: int = Field(CHUNK_IDS, ge=1, description="User ids per RestrictCommand chunk.")
